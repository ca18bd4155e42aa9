#!/usr/bin/env python3
"""smtp_sink.py - a local SMTP server for the smtp provider's tests (aiosmtpd).

Listens on 127.0.0.1 on a free port, writes the port to --port-file once it
accepts connections, and stores each message it accepts in --dir as
msg-NNNN.eml (the message as received) and msg-NNNN.json: the envelope
(sender, recipients, TLS or not, which connection brought it) and the
message as Python's email package reads it (decoded headers, the MIME
tree), so tests check the message with a parser that is not herald's. Recipients are refused by their local part:
  reject...@  -> 550 5.1.1 no such user
  defer...@   -> 451 4.3.0 try again later
With --cert/--key it offers STARTTLS; with --auth USER:PASS it requires
AUTH (LOGIN or PLAIN, allowed without TLS) with those credentials.
It exits when its parent process goes away.
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.conns = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: no such user" % address
        if local.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.dir, "msg-%04d" % self.n)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(content)
        if not hasattr(session, "herald_conn"):
            session.herald_conn = next(self.conns)
        msg = email.message_from_bytes(content, policy=email.policy.default)
        parts, multiparts = [], []
        for part in msg.walk():
            if part.is_multipart():
                multiparts.append(part.get_content_type())
            else:
                parts.append({"type": part.get_content_type(),
                              "charset": part.get_content_charset(),
                              "encoding": part.get("Content-Transfer-Encoding", ""),
                              "text": part.get_content().replace("\r\n", "\n")})
        summary = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                   "tls": session.ssl is not None, "conn": session.herald_conn,
                   "header_names": list(msg.keys()),
                   "headers": {k: str(msg[k]) for k in ("From", "To", "Subject", "Date",
                                                        "Message-ID", "MIME-Version")
                               if msg[k] is not None},
                   "multiparts": multiparts, "parts": parts,
                   "defects": len(msg.defects)}
        with open(base + ".json.tmp", "w") as f:
            json.dump(summary, f)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK queued"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth")
    a = ap.parse_args()

    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        want = a.auth.encode().split(b":", 1)
        ok = [auth_data.login, auth_data.password] == want
        return AuthResult(success=ok, handled=False)

    handler = Sink(a.dir)

    def factory():
        kw = dict(tls_context=tls, require_starttls=False, decode_data=False)
        if a.auth:
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        return SMTP(handler, **kw)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(a.port_file + ".tmp", a.port_file)

    parent = os.getppid()

    async def watch_parent():
        while os.getppid() == parent:
            await asyncio.sleep(0.2)
        loop.stop()

    loop.create_task(watch_parent())
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
