#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target to tests/fuzz/corpus/<target>/.

A handful of small valid inputs and edge cases per target; libFuzzer grows
its own corpus from these at run time (`make fuzz` works on a copy). Rerun
after a format change and commit the result.
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- embedded bus segment files (src/bus/bus_embedded_int.h) ----
# u32 len, u32 crc32(bytes 8..len), i64 offset, i64 append ms, u32 key len, key, value
def record(off, ts, key, value):
    body = struct.pack("<qqI", off, ts, len(key)) + key + value
    n = 8 + len(body)
    return struct.pack("<II", n, zlib.crc32(body) & 0xFFFFFFFF) + body


T = 1714564800000
three = b"".join(record(i, T + i, b"k%d" % i, b"value %d" % i) for i in range(3))
write("fuzz_segment", "empty", b"")
write("fuzz_segment", "one", record(0, T, b"", b"v"))
write("fuzz_segment", "three", three)
write("fuzz_segment", "torn_tail", three + record(3, T + 3, b"k3", b"value 3")[:20])
bad = bytearray(three)
bad[len(three) // 2] ^= 0xFF
write("fuzz_segment", "corrupt_middle", bytes(bad))
write("fuzz_segment", "out_of_order", record(5, T, b"", b"a") + record(4, T, b"", b"b"))
write("fuzz_segment", "key_too_long", struct.pack("<II", 28, 0) + struct.pack("<qqI", 0, T, 99))
write("fuzz_segment", "short_len", struct.pack("<II", 7, 0) + b"\0" * 40)
write("fuzz_segment", "big", b"".join(record(i, T, b"key", b"x" * 300) for i in range(20)))


# ---- notification records (src/model/notif.h, version 1) ----
def notif(kind, channel, prio, status, attempt, strings):
    head = struct.pack("<BBBBBBHqqqq", ord("N"), 1, kind, channel, prio, status, attempt,
                       T, T + 1000, T + 2000, T * 1000)
    return head + b"".join(struct.pack("<I", len(s)) + s for s in strings)


ids = [b"0123456789abcdef0123456789abcdef", b"evt-1", b"u1", b"social", b"Hi", b"Kylie posted",
       b"dev-token", b"apns", b"", b"", b'{"k":"v"}']
write("fuzz_notif", "notification", notif(1, 0, 1, 0, 0, ids))
status = list(ids)
status[8], status[9] = b"msg-1", b"timeout"
write("fuzz_notif", "status", notif(2, 2, 3, 3, 2, status))
write("fuzz_notif", "empty_strings", notif(1, 4, 0, 0, 0, [b""] * 11))
write("fuzz_notif", "utf8", notif(1, 1, 2, 1, 1, [b"id", b"e", b"u", b"c", "t\u00e9st".encode(),
                                                  "\u2603 \xff".encode(), b"+15551234567", b"",
                                                  b"", b"", b""]))
write("fuzz_notif", "truncated", notif(1, 0, 1, 0, 0, ids)[:45])
write("fuzz_notif", "bad_version", b"N\x02" + notif(1, 0, 1, 0, 0, ids)[2:])


# versions 2 (quiet hours, time zone) and 3 (traceparent) of the same record
def notif_v(version, kind, channel, prio, status, attempt, quiet, strings):
    head = struct.pack("<BBBBBBHqqqqhh", ord("N"), version, kind, channel, prio, status, attempt,
                       T, T + 1000, T + 2000, T * 1000, quiet[0], quiet[1])
    return head + b"".join(struct.pack("<I", len(s)) + s for s in strings)


TP = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
write("fuzz_notif", "v2_status", notif_v(2, 2, 4, 1, 1, 1, (1320, 420), status + [b"Europe/Paris"]))
write("fuzz_notif", "v3_traceparent", notif_v(3, 1, 4, 1, 0, 1, (-1, -1), ids + [b"UTC", TP]))
write("fuzz_notif", "v3_traceparent_crlf",
      notif_v(3, 2, 4, 1, 1, 1, (-1, -1), status + [b"", TP + b"\r\nX-Evil: 1"]))
write("fuzz_notif", "bad_version_4", b"N\x04" + notif_v(3, 1, 4, 1, 0, 1, (-1, -1), ids + [b"", TP])[2:])

# ---- events and templates (src/model/event.h, template.h) ----
full = ('{"event_id":"evt-1","type":"post.created","source":"/social",'
        '"time":"2024-05-01T12:00:00.250Z","actor":"kylie","tenant":"acme",'
        '"audience":{"users":["u1","u2","u3"]},"data":{"text":"hi","a":{"b":"deep"}},'
        '"category":"social","priority":"critical","channels":["push","email"]}')
ce = ('{"specversion":"1.0","id":"ce-1","type":"com.shop.restock","source":"/shop",'
      '"time":"2024-05-01T14:00:00+02:00","subject":"shop-bot",'
      '"data":{"audience":{"topic":"product:iphone15"},"priority":"high",'
      '"category":"stock","channels":["sms"],"name":"iPhone 15"}}')
write("fuzz_event", "herald", full)
write("fuzz_event", "cloudevent", ce)
write("fuzz_event", "template_herald", "{{actor}} posted: {{data.text}} ({{data.a.b}})\n" + full)
write("fuzz_event", "template_ce", "{{data.name}} is back, {{user_id}} [{{user.locale}}]\n" + ce)
write("fuzz_event", "template_broken", "{{ {{{x}}} }} {{data.}} {{\n" + full)
write("fuzz_event", "followers", '{"event_id":"e","type":"t","audience":{"followers_of":"kylie"},'
      '"actor":"kylie","data":{}}')
write("fuzz_event", "empty_object", "{}")
write("fuzz_event", "traceparent", full[:-1] + ',"traceparent":"' + TP.decode() + '"}')
write("fuzz_event", "traceparent_ce", ce[:-1] + ',"traceparent":"01-' + TP.decode()[3:] + '-x"}')
write("fuzz_event", "traceparent_bad", full[:-1] + ',"traceparent":"00-00000000000000000000000000000000-'
      '00f067aa0ba902b7-01"}')


def event_record(flags, prio, aud, chmask, cmask, accepted, send_at, time_ms, strings, users):
    """A binary event record, version 1 (model/event.h)."""
    out = bytes([0xFF, ord("E"), 1, flags, prio, aud, chmask, cmask])
    out += struct.pack("<qqq", accepted, send_at, time_ms)
    for s in strings:  # event_id type source actor category tenant traceparent key data content
        if s is None:
            out += struct.pack("<I", 0)
        else:
            b = s.encode("utf-8", "surrogateescape")  # \udcXX: the byte XX
            out += struct.pack("<I", len(b) + 1) + b + b"\0"
    out += struct.pack("<I", len(users))
    for u in users:
        b = u.encode()
        out += struct.pack("<H", len(b)) + b + b"\0"
    return out


# records start with a template line: their length fields may hold a newline byte
write("fuzz_event", "record_users", b"{{actor}}: {{data.text}} {{user_id}}\n" + event_record(
    0, 2, 1, 0b00101, 0b00001, 1700000000000000, 0, 0,
    ["e1", "comment", None, "ann", "social", "acme", TP.decode(), None, '{"text":"hi","a":{"b":[1,2]}}',
     '{"title":"T","push":{"body":"B {{data.text}}"}}'], ["u1", "u2", "u3"]))
write("fuzz_event", "record_topic", b"{{type}}\n" + event_record(
    0, 1, 2, 0, 0, 1, 0, 1714564800000,
    ["e2", "t", "/src", None, "default", None, None, "news", None, None], []))

write("fuzz_event", "record_followers", b"{{actor}} {{data.x}}\n" + event_record(
    1, 3, 3, 0b00001, 0, 1700000000000000, 1700000060000, -62135596800000,
    ["e3", "post", None, "kylie", None, None, None, "kylie", '{"x":[true,null,1.5e300]}',
     '{"title":"{{actor}}","body":"b"}'], []))
# regressions: times outside the four-digit years, a string that is not UTF-8
# (each decoded, and its JSON rendition was refused)
write("fuzz_event", "record_far_time", b"{{type}}\n" + event_record(
    0, 1, 2, 0, 0, 1, 0, 0x030000018F34069E,
    ["e2", "t", "/src", None, "default", None, None, "news", None, None], []))
write("fuzz_event", "record_bad_utf8", b"{{type}}\n" + event_record(
    0, 1, 2, 0, 0, 1, 0, 0,
    ["e2", "t", "/src", None, "de\udcff\udcfft", None, None, "news", None, None], []))

# ---- POST /v1/events bodies: the fast path against jansson (event_scan_batch) ----
write("fuzz_event_scan", "one", full)
write("fuzz_event_scan", "batch", "[" + full + "," + full.replace("evt-1", "evt-2") + "]")
write("fuzz_event_scan", "bench", '[{"event_id":"r-1","type":"posted","actor":"u00000042",'
      '"category":"social","channels":["push"],"audience":{"users":["u00000001","u00000002"]},'
      '"data":{"text":"hello","n":1}}]')
write("fuzz_event_scan", "data_kinds", '{"event_id":"e","type":"t","audience":{"topic":"news"},'
      '"data":{"a":[1,-2,0,true,false,null,{},[]],"b":{"c":"caf\u00e9"},"d":1.5,"e":-0}}')
write("fuzz_event_scan", "spaces", ' [ { "event_id" : "e" , "type" : "t" , "audience" : '
      '{ "followers_of" : "kim" } , "send_at" : "1969-01-01T00:00:00Z" , "data" : { "x" : [ 1 , 2 ] } } ] ')
write("fuzz_event_scan", "duplicates", '{"event_id":"e","type":"t","audience":{"users":["a"]},'
      '"data":{"k":1,"k":2}}')

# ---- request paths (src/http/router.c); first byte: method and decode mode ----
GET, POST, PUT, DELETE = 0, 2, 3, 4
write("fuzz_router", "events", bytes([POST]) + b"/v1/events")
write("fuzz_router", "user", bytes([GET]) + b"/v1/users/u-1")
write("fuzz_router", "user_escaped", bytes([PUT]) + b"/v1/users/a%2Fb%20c/preferences")
write("fuzz_router", "sub_delete", bytes([DELETE]) + b"/v1/topics/product%3Aiphone/subscribers/u1")
write("fuzz_router", "template", bytes([GET]) + b"/v1/templates/post.created/email")
write("fuzz_router", "bad_escape", bytes([GET]) + b"/v1/users/%ZZ")
write("fuzz_router", "utf8", bytes([GET | 0x80]) + "/v1/users/j%C3%BCrgen+x".encode())
write("fuzz_router", "wrong_method", bytes([DELETE]) + b"/healthz")
write("fuzz_router", "unknown", bytes([GET]) + b"//v1//users/")

# ---- config files (src/config/config.c) ----
write("fuzz_config", "basic", "data_dir = /var/lib/herald\n[http]\nlisten = 0.0.0.0:8080\n"
      "max_body = 2m\nthreads = 8\n")
write("fuzz_config", "bus", "[bus]\nbackend = kafka\nfsync = always\nsegment_bytes = 1g\n"
      "[kafka]\nbootstrap.servers = k1:9092,k2:9092\nlinger.ms = 5\n")
write("fuzz_config", "topics", "[topics]\nreplication = 3\nmin_insync = 2\nretention.raw_ms = -1\n")
write("fuzz_config", "bad", "[http]\nthreads = lots\nunknown = 1\n= x\n[unterminated\n")
write("fuzz_config", "comments", "; comment\n# another\n\n[bus]\npartitions=16 ; trailing\n")
