/*
 * outbuf.c - gathered stage outputs, produced one batch per topic.
 */
#include "stage/outbuf.h"
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

/* A fan-out of a few thousand recipients stays in one flush; a 20,000-user
 * chunk task flushes every ~10,000 records. */
#define OUTBUF_FLUSH_BYTES ((size_t)4 << 20)

void outbuf_init(outbuf_t *o, app_t *app)
{
    memset(o, 0, sizeof(*o));
    buf_init(&o->bytes, 0);
    o->flush_bytes = OUTBUF_FLUSH_BYTES;
    o->app = app;
}

void outbuf_release(outbuf_t *o)
{
    buf_release(&o->bytes);
    free(o->recs);
    free(o->tmp);
    memset(o, 0, sizeof(*o));
}

hr_t outbuf_commit(outbuf_t *o, const char *topic, const void *key, size_t key_len, size_t at,
                   bus_batch_t *batch)
{
    if (o->n > 0 && batch != o->batch) {
        /* another batch's records go first, into their own batch: keep this
         * value aside meanwhile */
        size_t vl = o->bytes.len - at;
        char *v = xmalloc(vl ? vl : 1);
        memcpy(v, o->bytes.data + at, vl);
        o->bytes.len = at;
        hr_t r = outbuf_flush(o);
        if (r == HR_OK) r = buf_append(&o->bytes, v, vl);
        free(v);
        if (r != HR_OK) {
            o->bytes.len = 0;
            return r;
        }
        at = 0;
    }
    size_t vlen = o->bytes.len - at;
    size_t koff = o->bytes.len;
    hr_t r = key_len ? buf_append(&o->bytes, key, key_len) : HR_OK;
    if (r != HR_OK) {
        o->bytes.len = at;
        return r;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 256;
        o->recs = xrealloc(o->recs, (size_t)o->cap * sizeof(*o->recs));
    }
    o->recs[o->n++] = (outbuf_rec_t){topic, koff, key_len, at, vlen};
    o->batch = batch;
    if (o->bytes.len > o->flush_bytes) return outbuf_flush(o);
    return HR_OK;
}

hr_t outbuf_flush(outbuf_t *o)
{
    hr_t res = HR_OK;
    if (o->tmp_cap < o->n) {
        o->tmp_cap = o->n;
        o->tmp = xrealloc(o->tmp, (size_t)o->tmp_cap * sizeof(*o->tmp));
    }
    /* topics in order of first appearance; records of each in order */
    for (int i = 0; i < o->n; i++) {
        const char *topic = o->recs[i].topic;
        if (!topic) continue; /* taken with an earlier topic */
        int m = 0;
        for (int j = i; j < o->n; j++) {
            outbuf_rec_t *x = &o->recs[j];
            if (!x->topic || (x->topic != topic && strcmp(x->topic, topic) != 0)) continue;
            o->tmp[m++] = (bus_rec_t){-1, o->bytes.data + x->koff, x->klen, o->bytes.data + x->voff, x->vlen};
            x->topic = NULL;
        }
        hr_t r = stage_produce_batch(o->app, topic, o->tmp, m, o->batch, NULL);
        if (r != HR_OK && res == HR_OK) res = r;
    }
    o->n = 0;
    o->bytes.len = 0;
    o->batch = NULL;
    return res;
}
