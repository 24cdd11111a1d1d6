"""Antiphon's JACK client: one client named "Antiphon" with both ports, and no Python in JACK's thread.

python-rtmidi's JACK ports are one client each ("Antiphon", "Antiphon-01"), and its input callback
takes the GIL inside JACK's process thread; polled, it still stamps messages with the time its own
callback ran. This client's process callback is a few dozen lines of C (SOURCE below, compiled once
with the system's C compiler into Antiphon's cache folder and loaded with ctypes; see `build`):

- input: every event goes into a lock-free ring with its time (JACK's clock when this cycle began, plus
  the event's frame offset in the cycle, at the sample rate), its frame, the count of 0xF8 seen so far (its *ordinal*) and the transport *epoch*
  (bumped by Start, Continue, Stop and Song Position Pointer);
- output by tick: a message queued for ordinal N goes out in the same cycle, at the same frame, as
  the Nth 0xF8: an answer sits on the master's ticks whatever Python is doing. A 0xF8 lost on the way
  (a gap of two or three of the master's evenly spaced periods, in frames) is counted all the same,
  so that what is queued stays on the tick it was meant for; A transport message
  drops the queue and ends every note it started (the engine then re-plans on the new timeline);
- input order: one frame's system messages first, in the order the master sent them (Start, then the 0xF8
  of its frame: that 0xF8 is song tick 0), then its channel messages (a note merged ahead of its frame's
  0xF8 was sent on that tick);
- interruption: armed by the engine while an answer is under way, the player's note-on ends the notes the
  tick queue started, at that note's frame and before its frame's 0xF8 releases more, and drops the queue;
- output by frame: a message queued for an absolute sample frame goes out at it (a sample-exact player, as a
  DAW plays its track; the tests' DAW);
- output now: messages Python sends go out at the start of the next cycle; a full port buffer
  carries them to the next cycle instead of dropping them;
- reflexes: the engine arms, ahead of time, the accompaniment's reaction to each pitch the player might
  strike next (a table of up to eight messages per pitch, valid for a range of ordinals); the player's
  note-on gets its pitch's reaction in the same cycle, at the note's own frame (no Python between the
  note and the answer), the table disarms, and the note's input record names the table, so that the
  engine then plays on from what was heard;
- bookkeeping: which notes sound (ons and offs always pair; an off for a silent note is skipped; a
  second on is preceded by its off), and a log of everything written, with its time, its tag, the
  ordinal it went out with and whether it went out with that 0xF8 (else at once: sent now, late, a
  release), for the recorder and the counters.

Python talks to it through three rings (commands in, input and "sent" out) and never blocks it.
`NativeJack.open` raises `NativeUnavailable` when there is no C compiler or no libjack; the caller
then falls back to python-rtmidi polled from a thread (plugin/polled_io.py).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import jack_lib

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef uint32_t jack_nframes_t;
typedef uint64_t jack_time_t;
typedef uint32_t jack_port_id_t;
typedef struct jack_client jack_client_t;
typedef struct jack_port jack_port_t;
typedef struct { jack_nframes_t time; size_t size; unsigned char *buffer; } jack_midi_event_t;

static struct {
    jack_client_t *(*client_open)(const char *, int, int *, ...);
    int (*client_close)(jack_client_t *);
    char *(*get_client_name)(jack_client_t *);
    jack_port_t *(*port_register)(jack_client_t *, const char *, const char *, unsigned long, unsigned long);
    void *(*port_get_buffer)(jack_port_t *, jack_nframes_t);
    const char *(*port_name)(const jack_port_t *);
    jack_port_t *(*port_by_id)(jack_client_t *, jack_port_id_t);
    int (*set_process_callback)(jack_client_t *, int (*)(jack_nframes_t, void *), void *);
    int (*set_port_connect_callback)(jack_client_t *, void (*)(jack_port_id_t, jack_port_id_t, int, void *), void *);
    int (*activate)(jack_client_t *);
    int (*deactivate)(jack_client_t *);
    uint32_t (*midi_get_event_count)(void *);
    int (*midi_event_get)(jack_midi_event_t *, void *, uint32_t);
    void (*midi_clear_buffer)(void *);
    int (*midi_event_write)(void *, jack_nframes_t, const unsigned char *, size_t);
    jack_nframes_t (*last_frame_time)(const jack_client_t *);
    jack_nframes_t (*frame_time)(const jack_client_t *);
    jack_time_t (*get_time)(void);
    jack_nframes_t (*get_sample_rate)(jack_client_t *);
    pthread_t (*client_thread_id)(jack_client_t *);
    void (*on_shutdown)(jack_client_t *, void (*)(void *), void *);
    void (*set_error_function)(void (*)(const char *));
    void (*set_info_function)(void (*)(const char *));
} J;

enum { OP_SEND = 1, OP_RAW, OP_AT_TICK, OP_CANCEL_FROM, OP_RELEASE, OP_RELEASE_MISSED, OP_REFLEX_ARM, OP_AT_FRAME,
       OP_INTERRUPT_ARM };
enum { ST_CYCLES, ST_IN, ST_IN_DROPPED, ST_IN_LONG, ST_SENT, ST_SKIPPED_OFFS, ST_CARRIED, ST_LOST,
       ST_TICKS, ST_LATE, ST_STALE, ST_QUEUE_FULL, ST_COMMANDS, ST_LOG_DROPPED, ST_CONNECTS, ST_MAX_CYCLE_NS,
       ST_QUEUED, ST_SOUNDING, ST_LOST_TICKS, ST_REFLEXES, ST_MISSED_CYCLES, ST_LOST_TICKS_OWN, ST_DUPLICATE_TICKS,
       ST_INTERRUPTS, ST_SERVER_GONE, ST_N };

/* reflex: the id of the armed table that answered this note, or INTERRUPTED_ANSWER when it ended the answer */
typedef struct { uint64_t time_us; uint32_t frame, ordinal, epoch, reflex; uint8_t size, data[3]; } in_rec_t;
typedef struct { uint32_t op, epoch, ordinal, tag; uint8_t size, data[3]; uint32_t pad; } cmd_t;
typedef struct { uint64_t time_us; uint32_t tag, ordinal, late, frame; uint8_t size, data[3]; } out_rec_t;
typedef struct { uint32_t ordinal, seq, tag; uint8_t size, data[3]; } entry_t;

typedef struct { _Atomic uint32_t head, tail; uint32_t mask; size_t slot; char *mem; } ring_t;

static int ring_init(ring_t *r, uint32_t slots, size_t slot) {
    atomic_store(&r->head, 0); atomic_store(&r->tail, 0);
    r->mask = slots - 1; r->slot = slot;
    r->mem = calloc(slots, slot);
    if (r->mem) mlock(r->mem, slots * slot);
    return r->mem != NULL;
}
static uint32_t ring_free(ring_t *r) {
    return r->mask + 1 - (atomic_load_explicit(&r->head, memory_order_relaxed) -
                          atomic_load_explicit(&r->tail, memory_order_acquire));
}
static int ring_push(ring_t *r, const void *rec) {
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&r->tail, memory_order_acquire) > r->mask) return 0;
    memcpy(r->mem + (size_t)(h & r->mask) * r->slot, rec, r->slot);
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return 1;
}
static int ring_pop(ring_t *r, void *rec) {
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t == atomic_load_explicit(&r->head, memory_order_acquire)) return 0;
    memcpy(rec, r->mem + (size_t)(t & r->mask) * r->slot, r->slot);
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return 1;
}

#define QUEUE_CAP 16384
#define CARRY_CAP 4096
#define COMMANDS_PER_CYCLE 2048
#define REFLEX_MESSAGES 8
#define FRAME_QUEUE_CAP 4096
#define INTERRUPTED_ANSWER 0xFFFFFFFFu

/* the band's reaction to a player's note-on of one pitch, chosen ahead by the engine */
typedef struct { uint8_t n, data[REFLEX_MESSAGES][3]; } reflex_t;

typedef struct {
    jack_client_t *client;
    jack_port_t *in, *out;
    ring_t in_ring, cmd_ring, sent_ring;
    uint32_t ordinal, epoch, seq;
    /* 0xF8 that never reached us: counted in the ordinal all the same (see count_tick) */
    uint32_t last_tick_frame, intervals[8], n_intervals, next_interval, last_missing, long_run, long_missing;
    int have_tick;
    /* cycles the server never ran this client in (its frame time jumped: a starved server skips them): the
       last few spans of frames, [lo, hi). A lost 0xF8 due in one of them is counted in ST_LOST_TICKS_OWN;
       any other was never sent to us (the master missed that cycle, we did not) */
    jack_nframes_t next_frame0, skip_lo[4], skip_hi[4];
    uint32_t n_skips;
    int have_cycle, repeated;
    entry_t heap[QUEUE_CAP]; uint32_t heap_n;
    /* messages for an absolute sample frame (OP_AT_FRAME; the entry's `ordinal` holds the frame): a player that
       sends a stream exactly where it was written, as a DAW does */
    entry_t frame_heap[FRAME_QUEUE_CAP]; uint32_t frame_heap_n;
    entry_t scratch[QUEUE_CAP];
    out_rec_t carry[CARRY_CAP]; uint32_t carry_n;
    uint8_t sounding[16][128], touched[16][128];
    uint8_t answer[16][128];  /* sounding, and sent by the tick queue: the answer's notes an interruption ends */
    int interrupt_armed; uint32_t interrupt_epoch;
    uint16_t channels;
    int deactivated;
    /* armed: the first player's note-on at an ordinal in [reflex_from, reflex_until] of reflex_epoch gets its
       pitch's reaction in the same cycle, at the note's own frame, and disarms the table. Three tables: the
       callback reads the one its last OP_REFLEX_ARM named (reflex_active), the engine's thread loads one
       that is neither that nor the one it armed last (which may not have been taken yet) */
    reflex_t reflex_tables[3][128];
    const reflex_t *reflex;
    _Atomic int reflex_active;
    int reflex_loaded;
    uint32_t reflex_id, reflex_epoch, reflex_from, reflex_until;
    int reflex_armed;
    void *buf; jack_nframes_t frame0, floor, nframes, rate;
    jack_time_t cycle_us;
    _Atomic uint64_t stats[ST_N];
    sem_t input_ready;  /* posted once in a cycle that received a note or controller: the forwarder wakes */
    char name[256], in_name[512], out_name[512];
} aj_t;

static void bump(aj_t *io, int k, uint64_t by) { atomic_fetch_add_explicit(&io->stats[k], by, memory_order_relaxed); }

static int entry_less(const entry_t *a, const entry_t *b) {
    return a->ordinal != b->ordinal ? (int32_t)(a->ordinal - b->ordinal) < 0 : (int32_t)(a->seq - b->seq) < 0;
}
static int push_to(entry_t *heap, uint32_t *len, uint32_t cap, entry_t e) {
    if (*len >= cap) return 0;
    uint32_t i = (*len)++;
    while (i && entry_less(&e, &heap[(i - 1) / 2])) { heap[i] = heap[(i - 1) / 2]; i = (i - 1) / 2; }
    heap[i] = e;
    return 1;
}
static entry_t pop_from(entry_t *heap, uint32_t *len) {
    entry_t top = heap[0], last = heap[--(*len)];
    uint32_t i = 0, n = *len;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && entry_less(&heap[c + 1], &heap[c])) c++;
        if (!entry_less(&heap[c], &last)) break;
        heap[i] = heap[c]; i = c;
    }
    if (n) heap[i] = last;
    return top;
}
static int heap_push(aj_t *io, entry_t e) { return push_to(io->heap, &io->heap_n, QUEUE_CAP, e); }
static entry_t heap_pop(aj_t *io) { return pop_from(io->heap, &io->heap_n); }

/* a frame of this cycle as JACK time: when this cycle's callback began, plus the frame's offset.
   (jack_frames_to_time extrapolates from the driver's timer, which a late dummy driver makes jump
   by tens of milliseconds; the callback's own start only ever errs late, by its wake-up delay) */
static jack_time_t stamp(aj_t *io, jack_nframes_t frame) {
    return io->cycle_us + (jack_time_t)frame * 1000000u / io->rate;
}

static void log_sent(aj_t *io, jack_nframes_t frame, const uint8_t *d, uint8_t size, uint32_t tag, uint32_t late) {
    out_rec_t r = {0};
    r.time_us = stamp(io, frame);
    r.tag = tag; r.ordinal = io->ordinal; r.late = late; r.frame = io->frame0 + frame; r.size = size;
    memcpy(r.data, d, size);
    if (!ring_push(&io->sent_ring, &r)) bump(io, ST_LOG_DROPPED, 1);
}

/* write one message now or, when the port buffer is full (or already carrying), in the next cycle */
static void write_out(aj_t *io, jack_nframes_t frame, const uint8_t *d, uint8_t size, uint32_t tag, uint32_t late,
                      int counted) {
    if (frame < io->floor) frame = io->floor;
    if (io->carry_n == 0 && J.midi_event_write(io->buf, frame, d, size) == 0) {
        io->floor = frame;
        if (counted) { bump(io, ST_SENT, 1); log_sent(io, frame, d, size, tag, late); }
        return;
    }
    if (io->carry_n < CARRY_CAP) {
        out_rec_t *c = &io->carry[io->carry_n++];
        c->tag = tag; c->late = late | (counted ? 0x80000000u : 0); c->size = size;
        memcpy(c->data, d, size);
        bump(io, ST_CARRIED, 1);
    } else bump(io, ST_LOST, 1);
}

static void flush_carry(aj_t *io) {
    uint32_t i = 0;
    for (; i < io->carry_n; i++) {
        out_rec_t *c = &io->carry[i];
        if (J.midi_event_write(io->buf, 0, c->data, c->size) != 0) break;
        if (c->late & 0x80000000u) { bump(io, ST_SENT, 1); log_sent(io, 0, c->data, c->size, c->tag, 1); }
    }
    if (i) { memmove(io->carry, io->carry + i, (io->carry_n - i) * sizeof(out_rec_t)); io->carry_n -= i; }
}

/* the note bookkeeping: every note-on gets its note-off, an off for a silent note is skipped */
static void emit(aj_t *io, jack_nframes_t frame, const uint8_t *d, uint8_t size, uint32_t tag, uint32_t late) {
    uint8_t st = d[0], kind = st & 0xF0, ch = st & 0x0F;
    if (size == 3 && st >= 0x80 && st < 0xF0 && (kind == 0x80 || kind == 0x90)) {
        uint8_t p = d[1] & 0x7F;
        if (kind == 0x80 || d[2] == 0) {
            if (!io->sounding[ch][p]) { bump(io, ST_SKIPPED_OFFS, 1); return; }
            io->sounding[ch][p] = 0; io->answer[ch][p] = 0;
        } else {
            if (io->sounding[ch][p]) { uint8_t off[3] = {(uint8_t)(0x80 | ch), p, 0}; write_out(io, frame, off, 3, 0, late, 1); }
            io->sounding[ch][p] = 1; io->touched[ch][p] = 1;
        }
    }
    if (st >= 0x80 && st < 0xF0) io->channels |= (uint16_t)(1u << ch);
    write_out(io, frame, d, size, tag, late, 1);
}

static void release_sounding(aj_t *io, jack_nframes_t frame) {
    for (int ch = 0; ch < 16; ch++)
        for (int p = 0; p < 128; p++)
            if (io->sounding[ch][p]) { uint8_t off[3] = {(uint8_t)(0x80 | ch), (uint8_t)p, 0}; emit(io, frame, off, 3, 0, 1); }
}

/* the player's note-on while an answer plays (armed by the engine, in call and response): the answer's sounding
   notes end at the note's own frame, and what it had queued for later ticks is dropped, in this very cycle */
static int interrupt_answer(aj_t *io, jack_nframes_t frame) {
    if (!io->interrupt_armed || io->interrupt_epoch != io->epoch) return 0;
    io->interrupt_armed = 0;
    io->heap_n = 0;
    for (int ch = 0; ch < 16; ch++)
        for (int p = 0; p < 128; p++)
            if (io->sounding[ch][p] && io->answer[ch][p]) {
                uint8_t off[3] = {(uint8_t)(0x80 | ch), (uint8_t)p, 0};
                emit(io, frame, off, 3, 0, 1);
            }
    bump(io, ST_INTERRUPTS, 1);
    return 1;
}

/* a message the tick queue sends: a note-on is the answer's */
static void emit_queued(aj_t *io, jack_nframes_t frame, const entry_t *e, uint32_t late) {
    emit(io, frame, e->data, e->size, e->tag, late);
    uint8_t kind = e->data[0] & 0xF0;
    if (e->size == 3 && kind == 0x90 && e->data[2]) io->answer[e->data[0] & 0x0F][e->data[1] & 0x7F] = 1;
}

static void cancel_from(aj_t *io, uint32_t ordinal) {
    /* keep what is due before `ordinal`; a note that would still sound there (started by what is
       kept, or whose queued note-off is dropped) ends there */
    uint32_t n = 0;
    while (io->heap_n) io->scratch[n++] = heap_pop(io);
    static uint8_t ends[16][128], will[16][128];
    memset(ends, 0, sizeof ends); memset(will, 0, sizeof will);
    for (uint32_t i = 0; i < n; i++) {
        entry_t *e = &io->scratch[i];
        uint8_t kind = e->data[0] & 0xF0, ch = e->data[0] & 0x0F, p = e->data[1] & 0x7F;
        int note = e->size == 3 && (kind == 0x80 || kind == 0x90);
        int off = note && (kind == 0x80 || e->data[2] == 0);
        if ((int32_t)(e->ordinal - ordinal) < 0) {
            heap_push(io, *e);
            if (note) will[ch][p] = !off;
        } else if (off) ends[ch][p] = 1;
    }
    for (int ch = 0; ch < 16; ch++)
        for (int p = 0; p < 128; p++)
            if (will[ch][p] || ends[ch][p]) {
                entry_t e = {ordinal, io->seq++, 0, 3, {(uint8_t)(0x80 | ch), (uint8_t)p, 0}};
                heap_push(io, e);
            }
}

static void run_command(aj_t *io, const cmd_t *c) {
    switch (c->op) {
    case OP_SEND: emit(io, 0, c->data, c->size, c->tag, 1); break;
    case OP_RAW: write_out(io, 0, c->data, c->size, 0, 0, 0); break;
    case OP_AT_TICK: {
        if (c->epoch != io->epoch) { bump(io, ST_STALE, 1); break; }
        entry_t e = {c->ordinal, io->seq++, c->tag, c->size, {0}};
        memcpy(e.data, c->data, c->size);
        if ((int32_t)(c->ordinal - io->ordinal) <= 0) { bump(io, ST_LATE, 1); emit_queued(io, 0, &e, 1); break; }
        if (!heap_push(io, e)) {
            bump(io, ST_QUEUE_FULL, 1);
            uint8_t kind = c->data[0] & 0xF0;
            if (!(kind == 0x90 && c->data[2])) emit(io, 0, c->data, c->size, c->tag, 1);  /* never lose an off */
        }
        break;
    }
    case OP_CANCEL_FROM: if (c->epoch == io->epoch) cancel_from(io, c->ordinal); break;
    case OP_AT_FRAME: {
        entry_t e = {c->ordinal, io->seq++, c->tag, c->size, {0}};
        memcpy(e.data, c->data, c->size);
        if (!push_to(io->frame_heap, &io->frame_heap_n, FRAME_QUEUE_CAP, e)) bump(io, ST_QUEUE_FULL, 1);
        break;
    }
    case OP_INTERRUPT_ARM: io->interrupt_armed = c->data[0] != 0; io->interrupt_epoch = c->epoch; break;
    case OP_RELEASE:
        if (c->data[0] & 1) io->heap_n = 0;
        release_sounding(io, 0);
        if (c->data[0] & 2)
            for (int ch = 0; ch < 16; ch++)
                if (io->channels & (1u << ch)) {
                    uint8_t sus[3] = {(uint8_t)(0xB0 | ch), 64, 0}, ano[3] = {(uint8_t)(0xB0 | ch), 123, 0};
                    emit(io, 0, sus, 3, 0, 1); emit(io, 0, ano, 3, 0, 1);
                }
        break;
    case OP_REFLEX_ARM:
        io->reflex_id = c->tag; io->reflex_epoch = c->epoch; io->reflex_from = c->ordinal;
        io->reflex_until = c->ordinal + (uint32_t)(c->data[0] | c->data[1] << 8);
        io->reflex_armed = c->tag != 0 && c->data[2] < 3;
        if (io->reflex_armed) {
            io->reflex = io->reflex_tables[c->data[2]];
            atomic_store_explicit(&io->reflex_active, c->data[2], memory_order_release);
        }
        break;
    case OP_RELEASE_MISSED:
        for (int ch = 0; ch < 16; ch++)
            for (int p = 0; p < 128; p++) {
                if (io->touched[ch][p] && !io->sounding[ch][p]) {
                    uint8_t off[3] = {(uint8_t)(0x80 | ch), (uint8_t)p, 0};
                    write_out(io, 0, off, 3, 0, 1, 1);
                }
                io->touched[ch][p] = io->sounding[ch][p];
            }
        break;
    }
}

static int important(const uint8_t *d, size_t size) {
    /* what the input ring keeps when nearly full: note-offs, sustain/all-notes-off/reset, transport */
    uint8_t kind = d[0] & 0xF0;
    if (d[0] >= 0xF0) return d[0] == 0xF8 || d[0] == 0xFA || d[0] == 0xFB || d[0] == 0xFC || d[0] == 0xF2;
    if (kind == 0x80 || (kind == 0x90 && size == 3 && d[2] == 0)) return 1;
    return kind == 0xB0 && size == 3 && (d[1] == 64 || d[1] == 120 || d[1] == 121 || d[1] == 123);
}

/* The ordinal of a 0xF8 at absolute frame `frame`: one more than the last, plus the ticks that never
   arrived. The master's ticks are evenly spaced in frames (jitter aside): an interval of 1.6 periods or
   more (up to 3 missing) means 0xF8s were lost on the way (a cycle this client, or the master, missed).
   Counting them keeps every queued note on the tick it was meant for. A long interval followed by a
   short one is a 0xF8 that came late (the master missed a cycle), and four long ones in a row a slower
   tempo (a starved server loses ticks two or three times running, a DAW halves its tempo rarely): the
   count is taken back. */
/* the median reads slots 0..n_intervals-1: a fresh window starts writing at slot 0 */
static void forget_intervals(aj_t *io) { io->n_intervals = 0; io->next_interval = 0; }
static int cmp_u32(const void *a, const void *b) { uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b; return x < y ? -1 : x > y; }
static void count_tick(aj_t *io, jack_nframes_t frame) {
    uint32_t missing = 0;
    if (io->have_tick) {
        uint32_t d = frame - io->last_tick_frame;
        int normal = 1;
        if (io->n_intervals >= 4) {
            uint32_t sorted[8];
            memcpy(sorted, io->intervals, sizeof sorted);
            for (uint32_t i = 1; i < io->n_intervals; i++)  /* insertion sort: 8 values, no allocation */
                for (uint32_t j = i; j > 0 && cmp_u32(&sorted[j - 1], &sorted[j]) > 0; j--) {
                    uint32_t t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t;
                }
            uint32_t median = sorted[io->n_intervals / 2];
            if (io->last_missing && median && (uint64_t)d * 10 < (uint64_t)median * 6) {
                /* a long interval, then a short one: the 0xF8 between came late (its sender missed a cycle),
                   none was lost */
                io->ordinal -= io->last_missing;
                atomic_fetch_sub_explicit(&io->stats[ST_LOST_TICKS], io->last_missing, memory_order_relaxed);
                io->long_missing -= io->last_missing;
                if (io->long_run) io->long_run--;
                io->last_missing = 0;
                normal = 0;
            } else if (median && (uint64_t)d * 10 >= (uint64_t)median * 16) {
                normal = 0;
                uint32_t m = (uint32_t)(((uint64_t)d * 10 / median - 16) / 10) + 1;
                if (m > 3) { forget_intervals(io); io->last_missing = io->long_run = io->long_missing = 0; }  /* a gap */
                else if (io->long_run >= 3) {  /* a fourth long interval in a row: the tempo dropped */
                    io->ordinal -= io->long_missing;
                    atomic_fetch_sub_explicit(&io->stats[ST_LOST_TICKS], io->long_missing, memory_order_relaxed);
                    io->last_missing = io->long_run = io->long_missing = 0; forget_intervals(io); normal = 1;
                } else {
                    missing = m; io->last_missing = m; io->long_run++; io->long_missing += m;
                    uint32_t own = 0;
                    for (uint32_t i = 1; i <= m; i++) {
                        jack_nframes_t due = io->last_tick_frame + (jack_nframes_t)((uint64_t)d * i / (m + 1));
                        for (uint32_t k = 0; k < 4 && k < io->n_skips; k++)
                            if ((int32_t)(due - io->skip_lo[k]) >= 0 && (int32_t)(due - io->skip_hi[k]) < 0) { own++; break; }
                    }
                    if (own) bump(io, ST_LOST_TICKS_OWN, own);
                }
            }
        }
        if (normal) {
            if (missing == 0) io->last_missing = io->long_run = io->long_missing = 0;
            io->intervals[io->next_interval] = d;
            io->next_interval = (io->next_interval + 1) % 8;
            if (io->n_intervals < 8) io->n_intervals++;
        }
    }
    io->last_tick_frame = frame; io->have_tick = 1;
    io->ordinal += 1 + missing;
    if (missing) bump(io, ST_LOST_TICKS, missing);
}

static int is_note_on(const jack_midi_event_t *ev) {
    return ev->size == 3 && (ev->buffer[0] & 0xF0) == 0x90 && ev->buffer[2];
}

/* one input event, in the order `process` takes them (`interrupting`: this note-on ended the answer, before its
   frame's 0xF8 could release more of it); returns whether it should wake the forwarder */
static int take_input(aj_t *io, jack_midi_event_t *ev, int interrupting) {
    uint8_t st = ev->buffer[0];
    uint32_t reflex = interrupting ? INTERRUPTED_ANSWER : 0;
    if (is_note_on(ev) && !interrupting) {
        if (io->reflex_armed && io->reflex_epoch == io->epoch && (int32_t)(io->ordinal - io->reflex_from) >= 0
                 && (int32_t)(io->reflex_until - io->ordinal) >= 0) {
            const reflex_t *r = &io->reflex[ev->buffer[1] & 0x7F];
            for (int k = 0; k < r->n; k++) emit(io, ev->time, r->data[k], 3, 0, 1);
            reflex = io->reflex_id; io->reflex_armed = 0;
            bump(io, ST_REFLEXES, 1);
        }
    }
    if (st == 0xF8 && io->repeated && io->have_tick && (int32_t)(io->frame0 + ev->time - io->last_tick_frame) <= 0) {
        bump(io, ST_DUPLICATE_TICKS, 1);  /* a cycle run again: its 0xF8 was counted the first time */
        return 0;
    }
    if (st == 0xF8) { count_tick(io, io->frame0 + ev->time); bump(io, ST_TICKS, 1); }
    else if (st == 0xFA || st == 0xFB || st == 0xFC || st == 0xF2) {
        /* the transport moved: what was queued for ticks belongs to the old timeline */
        io->epoch++; io->heap_n = 0;
        /* and the tempo may have changed while it was still: the intervals heard so far say nothing of the next */
        io->have_tick = 0; io->last_missing = io->long_run = io->long_missing = 0; forget_intervals(io);
        release_sounding(io, ev->time);
    }
    int wake = 0;
    bump(io, ST_IN, 1);
    if (ev->size > 3) bump(io, ST_IN_LONG, 1);
    else if (ring_free(&io->in_ring) < (io->in_ring.mask + 1) / 8 && !important(ev->buffer, ev->size)) bump(io, ST_IN_DROPPED, 1);
    else {
        in_rec_t r = {0};
        r.time_us = stamp(io, ev->time);
        r.frame = io->frame0 + ev->time; r.ordinal = io->ordinal; r.epoch = io->epoch; r.reflex = reflex;
        r.size = (uint8_t)ev->size;
        memcpy(r.data, ev->buffer, ev->size);
        if (!ring_push(&io->in_ring, &r)) bump(io, ST_IN_DROPPED, 1);
        else if (st < 0xF0) wake = 1;
    }
    if (st == 0xF8)
        while (io->heap_n && (int32_t)(io->heap[0].ordinal - io->ordinal) <= 0) {
            entry_t e = heap_pop(io);
            /* queued for a 0xF8 that never arrived (counted lost): it goes out with this one, and is logged
               where it went out */
            emit_queued(io, ev->time, &e, e.ordinal != io->ordinal);
        }
    return wake;
}

static uint64_t now_ns(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000ull + ts.tv_nsec; }

static int process(jack_nframes_t nframes, void *arg) {
    aj_t *io = arg;
    uint64_t t0 = now_ns();
    io->cycle_us = J.get_time();
    void *in = J.port_get_buffer(io->in, nframes);
    io->buf = J.port_get_buffer(io->out, nframes);
    J.midi_clear_buffer(io->buf);
    io->frame0 = J.last_frame_time(io->client);
    io->floor = 0; io->nframes = nframes;
    if (io->have_cycle && (int32_t)(io->frame0 - io->next_frame0) > 0) {
        uint32_t k = io->n_skips++ % 4;
        io->skip_lo[k] = io->next_frame0; io->skip_hi[k] = io->frame0;
        bump(io, ST_MISSED_CYCLES, (uint32_t)(io->frame0 - io->next_frame0) / (nframes ? nframes : 1));
    }
    io->repeated = io->have_cycle && (int32_t)(io->frame0 - io->next_frame0) < 0;  /* frames seen already */
    if (!io->repeated) io->next_frame0 = io->frame0 + nframes;
    io->have_cycle = 1;
    flush_carry(io);
    cmd_t c;
    for (int k = 0; k < COMMANDS_PER_CYCLE && ring_pop(&io->cmd_ring, &c); k++) { run_command(io, &c); bump(io, ST_COMMANDS, 1); }
    uint32_t n = J.midi_get_event_count(in);
    int wake = 0;
    for (uint32_t g = 0; g < n;) {
        jack_midi_event_t first, ev;
        if (J.midi_event_get(&first, in, g) != 0) { g++; continue; }
        uint32_t end = g + 1;
        while (end < n && J.midi_event_get(&ev, in, end) == 0 && ev.time == first.time) end++;
        /* the player's note-on that interrupts the answer comes before its frame's 0xF8 releases any more of it */
        uint32_t interrupting = end;
        for (uint32_t i = g; i < end && io->interrupt_armed; i++)
            if (J.midi_event_get(&ev, in, i) == 0 && is_note_on(&ev)) {
                if (interrupt_answer(io, first.time)) interrupting = i;
                break;
            }
        /* one frame's events: its system messages first, in the order the master sent them (Start, then the
           0xF8 of its frame: that 0xF8 is song tick 0), then its channel messages, in theirs (a note merged
           ahead of the 0xF8 of its own frame, two ports' events at one time, was sent on that tick) */
        for (int system = 1; system >= 0; system--)
            for (uint32_t i = g; i < end; i++)
                if (J.midi_event_get(&ev, in, i) == 0 && ev.size && (ev.buffer[0] >= 0xF0) == system)
                    wake |= take_input(io, &ev, i == interrupting);
        g = end;
    }
    /* the player's stream, at its frames (a frame already gone by goes out at once, logged late) */
    while (io->frame_heap_n && (int32_t)(io->frame_heap[0].ordinal - (io->frame0 + nframes)) < 0) {
        entry_t e = pop_from(io->frame_heap, &io->frame_heap_n);
        int32_t at = (int32_t)(e.ordinal - io->frame0);
        emit(io, at > 0 ? (jack_nframes_t)at : 0, e.data, e.size, e.tag, at < 0);
    }
    /* sem_post is an atomic add and, only when the forwarder sleeps on it, one futex wake: no lock, no
       allocation, never blocks (the clock's own 0xF8s wake nobody: the follower needs only their stamps) */
    if (wake) sem_post(&io->input_ready);
    uint32_t sounding = 0;
    for (int ch = 0; ch < 16; ch++) if (io->channels & (1u << ch)) for (int p = 0; p < 128; p++) sounding += io->sounding[ch][p];
    atomic_store_explicit(&io->stats[ST_SOUNDING], sounding, memory_order_relaxed);
    atomic_store_explicit(&io->stats[ST_QUEUED], io->heap_n + io->carry_n, memory_order_relaxed);
    bump(io, ST_CYCLES, 1);
    uint64_t dt = now_ns() - t0;
    if (dt > atomic_load_explicit(&io->stats[ST_MAX_CYCLE_NS], memory_order_relaxed))
        atomic_store_explicit(&io->stats[ST_MAX_CYCLE_NS], dt, memory_order_relaxed);
    return 0;
}

static void on_connect(jack_port_id_t a, jack_port_id_t b, int connected, void *arg) {
    aj_t *io = arg;
    if (connected && J.port_by_id && (J.port_by_id(io->client, a) == io->out || J.port_by_id(io->client, b) == io->out))
        bump(io, ST_CONNECTS, 1);
}

static void jack_quiet(const char *msg) { (void)msg; }

/* JACK's thread, when the server shuts the client down (it stopped, or threw the client out): a flag the
   I/O process reads, and the forwarder woken */
static void on_server_gone(void *arg) {
    aj_t *io = arg;
    atomic_store_explicit(&io->stats[ST_SERVER_GONE], 1, memory_order_relaxed);
    sem_post(&io->input_ready);
}

#define SYM(field, name, required) do { *(void **)&J.field = dlsym(lib, name); \
    if (!J.field && required) { snprintf(err, errlen, "libjack has no %s", name); return NULL; } } while (0)

aj_t *aj_open(const char *libpath, const char *client_name, const char *in_name, const char *out_name,
              int rt_priority, char *err, int errlen) {
    void *lib = dlopen(libpath, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { snprintf(err, errlen, "cannot load %s: %s", libpath, dlerror()); return NULL; }
    SYM(client_open, "jack_client_open", 1); SYM(client_close, "jack_client_close", 1);
    SYM(get_client_name, "jack_get_client_name", 1); SYM(port_register, "jack_port_register", 1);
    SYM(port_get_buffer, "jack_port_get_buffer", 1); SYM(port_name, "jack_port_name", 1);
    SYM(port_by_id, "jack_port_by_id", 0); SYM(set_process_callback, "jack_set_process_callback", 1);
    SYM(set_port_connect_callback, "jack_set_port_connect_callback", 0);
    SYM(activate, "jack_activate", 1); SYM(deactivate, "jack_deactivate", 1);
    SYM(midi_get_event_count, "jack_midi_get_event_count", 1); SYM(midi_event_get, "jack_midi_event_get", 1);
    SYM(midi_clear_buffer, "jack_midi_clear_buffer", 1); SYM(midi_event_write, "jack_midi_event_write", 1);
    SYM(last_frame_time, "jack_last_frame_time", 1); SYM(frame_time, "jack_frame_time", 1);
    SYM(get_time, "jack_get_time", 1); SYM(get_sample_rate, "jack_get_sample_rate", 1);
    SYM(client_thread_id, "jack_client_thread_id", 0); SYM(on_shutdown, "jack_on_shutdown", 0);
    SYM(set_error_function, "jack_set_error_function", 0); SYM(set_info_function, "jack_set_info_function", 0);
    if (!getenv("ANTIPHON_DEBUG")) {  /* libjack's own lines ("Cannot read socket fd", ...): Antiphon says it in words */
        if (J.set_error_function) J.set_error_function(jack_quiet);
        if (J.set_info_function) J.set_info_function(jack_quiet);
    }
    aj_t *io = calloc(1, sizeof(aj_t));
    if (io) mlock(io, sizeof *io);
    if (!io || !ring_init(&io->in_ring, 1u << 16, sizeof(in_rec_t)) || !ring_init(&io->cmd_ring, 1u << 14, sizeof(cmd_t))
        || !ring_init(&io->sent_ring, 1u << 15, sizeof(out_rec_t))) {
        snprintf(err, errlen, "out of memory"); return NULL;
    }
    if (sem_init(&io->input_ready, 0, 0) != 0) { snprintf(err, errlen, "no semaphore for the input"); free(io); return NULL; }
    int status = 0;
    io->client = J.client_open(client_name, 0x01 /* JackNoStartServer */, &status);
    if (!io->client) { snprintf(err, errlen, "no JACK server reachable (status 0x%x)", status); free(io); return NULL; }
    snprintf(io->name, sizeof io->name, "%s", J.get_client_name(io->client));
    io->rate = J.get_sample_rate(io->client);
    if (!io->rate) io->rate = 48000;
    io->in = J.port_register(io->client, in_name, "8 bit raw midi", 0x1, 0);
    io->out = J.port_register(io->client, out_name, "8 bit raw midi", 0x2, 0);
    if (!io->in || !io->out) {
        snprintf(err, errlen, "JACK refused to register the ports"); J.client_close(io->client); free(io); return NULL;
    }
    snprintf(io->in_name, sizeof io->in_name, "%s", J.port_name(io->in));
    snprintf(io->out_name, sizeof io->out_name, "%s", J.port_name(io->out));
    J.set_process_callback(io->client, process, io);
    if (J.on_shutdown) J.on_shutdown(io->client, on_server_gone, io);
    if (J.set_port_connect_callback) J.set_port_connect_callback(io->client, on_connect, io);
    if (J.activate(io->client) != 0) { snprintf(err, errlen, "JACK refused to activate the client"); J.client_close(io->client); free(io); return NULL; }
    if (rt_priority > 0 && J.client_thread_id) {
        /* a server started without realtime leaves client threads at normal priority (or at the
           priority of the thread that opened the client): our callback is microseconds of work, so it
           may run before everything else of ours where the system allows */
        pthread_t t = J.client_thread_id(io->client);
        int policy; struct sched_param sp;
        if (t && pthread_getschedparam(t, &policy, &sp) == 0 &&
            (policy == SCHED_OTHER || policy == SCHED_BATCH || sp.sched_priority < rt_priority)) {
            sp.sched_priority = rt_priority;  /* above the I/O process's own Python threads */
            pthread_setschedparam(t, SCHED_FIFO, &sp);
        }
    }
    return io;
}

const char *aj_name(aj_t *io, int which) { return which == 0 ? io->name : which == 1 ? io->in_name : io->out_name; }
void *aj_client(aj_t *io) { return io->client; }
int aj_command(aj_t *io, uint32_t op, uint32_t epoch, uint32_t ordinal, uint32_t tag, const uint8_t *data, uint32_t size) {
    cmd_t c = {op, epoch, ordinal, tag, (uint8_t)(size > 3 ? 3 : size), {0}, 0};
    if (size) memcpy(c.data, data, c.size);
    return ring_push(&io->cmd_ring, &c);
}
int aj_pending_commands(aj_t *io) {
    return (int)(atomic_load(&io->cmd_ring.head) - atomic_load(&io->cmd_ring.tail)) + (int)io->carry_n;
}
/* the forwarder's sleep: until a cycle brings a note or controller, or `timeout_us` */
void aj_wait_input(aj_t *io, int timeout_us) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)timeout_us * 1000;
    while (ts.tv_nsec >= 1000000000L) { ts.tv_nsec -= 1000000000L; ts.tv_sec++; }
    if (sem_timedwait(&io->input_ready, &ts) == 0)
        while (sem_trywait(&io->input_ready) == 0) {}  /* one wake-up reads every cycle's input */
}
/* the engine's thread: copies a table (128 x (count, 8 x 3 bytes)) into a buffer the callback is not reading
   and returns its index for OP_REFLEX_ARM */
int aj_load_reflexes(aj_t *io, const uint8_t *table) {
    int active = atomic_load_explicit(&io->reflex_active, memory_order_acquire), k = 0;
    while (k == active || k == io->reflex_loaded) k++;
    for (int p = 0; p < 128; p++) {
        const uint8_t *e = table + p * (1 + 3 * REFLEX_MESSAGES);
        reflex_t *r = &io->reflex_tables[k][p];
        r->n = e[0] < REFLEX_MESSAGES ? e[0] : REFLEX_MESSAGES;
        memcpy(r->data, e + 1, 3 * REFLEX_MESSAGES);
    }
    io->reflex_loaded = k;
    return k;
}
int aj_read_input(aj_t *io, in_rec_t *buf, int max) { int n = 0; while (n < max && ring_pop(&io->in_ring, &buf[n])) n++; return n; }
int aj_read_sent(aj_t *io, out_rec_t *buf, int max) { int n = 0; while (n < max && ring_pop(&io->sent_ring, &buf[n])) n++; return n; }
void aj_stats(aj_t *io, uint64_t *out) { for (int k = 0; k < ST_N; k++) out[k] = atomic_load_explicit(&io->stats[k], memory_order_relaxed); }
void aj_sounding(aj_t *io, uint8_t *out) { memcpy(out, io->sounding, sizeof io->sounding); }
uint64_t aj_time_us(aj_t *io) { (void)io; return J.get_time(); }
uint32_t aj_frame_now(aj_t *io) { return J.frame_time(io->client); }
int aj_thread_policy(aj_t *io) {
    int policy = -1; struct sched_param sp;
    if (J.client_thread_id) { pthread_t t = J.client_thread_id(io->client); if (t) pthread_getschedparam(t, &policy, &sp); }
    return policy;
}
/* out of the process graph: no cycle runs after this returns, so the counts and the sent log are final */
void aj_deactivate(aj_t *io) {
    if (io && !io->deactivated) {
        if (!atomic_load_explicit(&io->stats[ST_SERVER_GONE], memory_order_relaxed)) J.deactivate(io->client);
        io->deactivated = 1;
    }
}
void aj_close(aj_t *io) {
    if (!io) return;
    aj_deactivate(io);
    J.client_close(io->client);
    free(io->in_ring.mem); free(io->cmd_ring.mem); free(io->sent_ring.mem);
    sem_destroy(&io->input_ready);
    free(io);
}
"""

(OP_SEND, OP_RAW, OP_AT_TICK, OP_CANCEL_FROM, OP_RELEASE, OP_RELEASE_MISSED, OP_REFLEX_ARM, OP_AT_FRAME,
 OP_INTERRUPT_ARM) = range(1, 10)
INTERRUPTED_ANSWER = 0xFFFFFFFF  # an input record's `reflex` when its note-on ended the answer in the callback
REFLEX_MESSAGES = 8  # per pitch
REFLEX_ENTRY = 1 + 3 * REFLEX_MESSAGES
STATS = ("cycles", "in", "in_dropped", "in_long", "sent", "skipped_offs", "carried", "lost", "ticks", "late", "stale",
         "queue_full", "commands", "log_dropped", "connects", "max_cycle_ns", "queued", "sounding", "lost_ticks",
         "reflexes", "missed_cycles", "lost_ticks_own", "duplicate_ticks", "interrupts", "server_gone")
RELEASE_CLEAR, RELEASE_CONTROLLERS = 1, 2


def pack_reflexes(reactions: dict[int, list[bytes]]) -> bytes:
    """A reaction table as the process callback reads it: for each of the 128 pitches, a count and up to
    eight 3-byte messages."""
    table = bytearray(128 * REFLEX_ENTRY)
    for pitch, messages in reactions.items():
        messages = [bytes(m) for m in messages[:REFLEX_MESSAGES] if len(m) == 3]
        at = (pitch & 0x7F) * REFLEX_ENTRY
        table[at] = len(messages)
        table[at + 1:at + 1 + 3 * len(messages)] = b"".join(messages)
    return bytes(table)


class NativeUnavailable(RuntimeError):
    """The native client cannot be built or loaded here (no C compiler, no libjack)."""


class InRecord(ctypes.Structure):
    _fields_ = [("time_us", ctypes.c_uint64), ("frame", ctypes.c_uint32), ("ordinal", ctypes.c_uint32),
                ("epoch", ctypes.c_uint32), ("reflex", ctypes.c_uint32), ("size", ctypes.c_uint8),
                ("data", ctypes.c_uint8 * 3)]


class OutRecord(ctypes.Structure):
    _fields_ = [("time_us", ctypes.c_uint64), ("tag", ctypes.c_uint32), ("ordinal", ctypes.c_uint32),
                ("late", ctypes.c_uint32), ("frame", ctypes.c_uint32), ("size", ctypes.c_uint8),
                ("data", ctypes.c_uint8 * 3)]


def cache_dir() -> Path:
    """ANTIPHON_CACHE_DIR, else $XDG_CACHE_HOME/antiphon, else ~/.cache/antiphon."""
    if os.environ.get("ANTIPHON_CACHE_DIR"):
        return Path(os.environ["ANTIPHON_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "antiphon"


_build_lock = threading.Lock()


def build() -> Path:
    """The compiled client, built once per source, compiler and platform (atomically: concurrent
    starts never see half a file). Raises NativeUnavailable without a C compiler."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc or not shutil.which(cc.split()[0]):
        raise NativeUnavailable("no C compiler (cc) to build Antiphon's JACK client")
    key = hashlib.sha256(f"{SOURCE}\0{cc}\0{sys.platform}\0{os.uname().machine}".encode()).hexdigest()[:16]
    out = cache_dir() / f"jack-client-{key}.so"
    with _build_lock:
        if out.exists():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            src = Path(tmp) / "jack_client.c"
            src.write_text(SOURCE)
            lib = Path(tmp) / out.name
            r = subprocess.run([*cc.split(), "-O2", "-std=gnu11", "-fPIC", "-shared", "-o", str(lib), str(src),
                                "-ldl", "-lpthread"], capture_output=True, text=True)
            if r.returncode != 0:
                raise NativeUnavailable(f"building Antiphon's JACK client failed: {r.stderr.strip()[-400:]}")
            os.replace(lib, out)
    return out


def _declare(lib) -> None:
    vp, cp, u32, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int
    lib.aj_open.restype = vp
    lib.aj_open.argtypes = [cp, cp, cp, cp, i32, ctypes.c_char_p, i32]
    lib.aj_name.restype = cp
    lib.aj_name.argtypes = [vp, i32]
    lib.aj_client.restype = vp
    lib.aj_client.argtypes = [vp]
    lib.aj_command.restype = i32
    lib.aj_command.argtypes = [vp, u32, u32, u32, u32, ctypes.c_char_p, u32]
    lib.aj_pending_commands.restype = i32
    lib.aj_pending_commands.argtypes = [vp]
    lib.aj_load_reflexes.restype = i32
    lib.aj_load_reflexes.argtypes = [vp, ctypes.c_char_p]
    lib.aj_wait_input.restype = None
    lib.aj_wait_input.argtypes = [vp, i32]
    lib.aj_read_input.restype = i32
    lib.aj_read_input.argtypes = [vp, ctypes.POINTER(InRecord), i32]
    lib.aj_read_sent.restype = i32
    lib.aj_read_sent.argtypes = [vp, ctypes.POINTER(OutRecord), i32]
    lib.aj_stats.argtypes = [vp, ctypes.POINTER(ctypes.c_uint64)]
    lib.aj_sounding.argtypes = [vp, ctypes.POINTER(ctypes.c_uint8)]
    lib.aj_time_us.restype = ctypes.c_uint64
    lib.aj_time_us.argtypes = [vp]
    lib.aj_frame_now.restype = u32
    lib.aj_frame_now.argtypes = [vp]
    lib.aj_thread_policy.restype = i32
    lib.aj_thread_policy.argtypes = [vp]
    lib.aj_deactivate.argtypes = [vp]
    lib.aj_close.argtypes = [vp]


class NativeJack:
    """The open client. Commands may come from any thread (one lock, Python side only); `read_input`
    and `read_sent` each belong to one reader thread."""

    BATCH = 1024
    kind = "native"
    backend = "jack"

    def __init__(self, lib, handle, jack: jack_lib.Library):
        self._lib, self._h, self.jack = lib, handle, jack
        self._cmd_lock = threading.Lock()
        self._cycles_stopped = False
        self._in_buf = (InRecord * self.BATCH)()
        self._out_buf = (OutRecord * self.BATCH)()
        self._stats = (ctypes.c_uint64 * len(STATS))()
        self._offset = jack_lib.clock_offset(self.jack_time_us)
        self.client_name = lib.aj_name(handle, 0).decode()
        self.in_name = lib.aj_name(handle, 1).decode()
        self.out_name = lib.aj_name(handle, 2).decode()
        self.command_overflows = 0
        from .sender import TimedSender

        # messages due at perf_counter() deadlines (the internal clock) go out through `send`
        self.timed = TimedSender(self.send, name="antiphon-sender", realtime=True)

    @classmethod
    def open(cls, client_name: str = "Antiphon", in_port: str = "Antiphon In", out_port: str = "Antiphon Out",
             rt_priority: int = 20) -> "NativeJack":
        jack = jack_lib.find_server()
        if jack is None:
            raise NativeUnavailable(f"no JACK server reachable (JACK_DEFAULT_SERVER={jack_lib.server_name()})")
        lib = ctypes.CDLL(str(build()))
        _declare(lib)
        err = ctypes.create_string_buffer(512)
        handle = lib.aj_open(jack.path.encode(), client_name.encode(), in_port.encode(), out_port.encode(),
                             rt_priority, err, len(err))
        if not handle:
            raise NativeUnavailable(err.value.decode(errors="replace"))
        return cls(lib, handle, jack)

    # ---- time ----------------------------------------------------------------------------------
    def jack_time_us(self) -> int:
        return self._lib.aj_time_us(self._h)  # jack_get_time(): no client needed

    def resync_clock(self) -> None:
        self._offset = jack_lib.clock_offset(self.jack_time_us)

    def to_perf(self, time_us: int) -> float:
        """A JACK time stamp (microseconds) as time.perf_counter() seconds."""
        return time_us * 1e-6 + self._offset

    # ---- commands ------------------------------------------------------------------------------
    def command(self, op: int, data: bytes = b"", epoch: int = 0, ordinal: int = 0, tag: int = 0) -> bool:
        with self._cmd_lock:
            if not self._h:  # closed: nothing may reach a freed client
                return False
            ok = bool(self._lib.aj_command(self._h, op, epoch & 0xFFFFFFFF, ordinal & 0xFFFFFFFF, tag & 0xFFFFFFFF,
                                           bytes(data), len(data)))
        if not ok:
            self.command_overflows += 1
        return ok

    def send(self, msg: bytes, tag: int = 0) -> bool:
        return self.command(OP_SEND, msg, tag=tag)

    def send_raw(self, msg: bytes) -> bool:
        """Written as is: no note bookkeeping, not counted (the start-up release sweep)."""
        return self.command(OP_RAW, msg)

    def at_tick(self, epoch: int, ordinal: int, msg: bytes, tag: int = 0) -> bool:
        return self.command(OP_AT_TICK, msg, epoch, ordinal, tag)

    def cancel_from(self, epoch: int, ordinal: int) -> bool:
        return self.command(OP_CANCEL_FROM, b"", epoch, ordinal)

    def at_frame(self, frame: int, msg: bytes, tag: int = 0) -> bool:
        """`msg` goes out at absolute sample frame `frame` (32-bit, as JACK counts), in that frame's cycle: a
        stream played exactly where it was written, as a DAW plays its track (at once if the frame has passed)."""
        return self.command(OP_AT_FRAME, msg, ordinal=frame, tag=tag)

    def frame_now(self) -> int:
        """JACK's estimate of the current sample frame (jack_frame_time)."""
        return int(self._lib.aj_frame_now(self._h)) if self._h else 0

    def arm_interrupt(self, epoch: int, armed: bool) -> bool:
        """While armed (an answer plays, in call and response), the player's next note-on of transport `epoch`
        ends, in the callback's cycle and at that note's frame, every note the tick queue started, and drops what
        is queued; the note's input record then carries INTERRUPTED_ANSWER. It disarms itself."""
        return self.command(OP_INTERRUPT_ARM, bytes([1 if armed else 0]), epoch)

    def release(self, clear_ticks: bool = True, controllers: bool = False) -> bool:
        flags = (RELEASE_CLEAR if clear_ticks else 0) | (RELEASE_CONTROLLERS if controllers else 0)
        return self.command(OP_RELEASE, bytes([flags]))

    def release_missed(self) -> bool:
        return self.command(OP_RELEASE_MISSED)

    def arm_reflexes(self, table_id: int, epoch: int, first: int, last: int, reactions) -> bool:
        """Arms the band's reactions: the first player's note-on at a 0xF8 ordinal in [first, last] of `epoch`
        gets `reactions[its pitch]` (up to 8 messages; a dict, or `pack_reflexes` of one) written by the process
        callback in the same cycle, at the note's frame; that note's input record carries `table_id`.
        table_id 0 disarms."""
        if not table_id or not self._h:
            return self.command(OP_REFLEX_ARM, bytes([0, 0, 0xFF]))
        table = reactions if isinstance(reactions, bytes) else pack_reflexes(reactions)
        k = self._lib.aj_load_reflexes(self._h, table)
        span = max(0, min(last - first, 0xFFFF))
        return self.command(OP_REFLEX_ARM, bytes([span & 0xFF, span >> 8, k]), epoch, first, table_id)

    def pending(self) -> int:
        """Commands not yet run plus messages carried to the next cycle (none once the server is gone: no
        cycle will run them)."""
        if not self._h or self.server_gone():
            return 0
        return self._lib.aj_pending_commands(self._h)

    def server_gone(self) -> bool:
        """The JACK server shut this client down (it stopped, or threw the client out)."""
        return bool(self.stats()["server_gone"])

    def release_every_note(self, channels) -> None:
        from .sender import release_every_note

        release_every_note(self.send_raw, channels)

    def poll(self) -> None:
        """Nothing to do: the process callback has filled the input ring already."""
    # ---- readers -------------------------------------------------------------------------------
    def wait_input(self, timeout_s: float) -> None:
        """Sleeps until a JACK cycle has received a note or controller, or `timeout_s` (the GIL is free)."""
        if self._h:
            self._lib.aj_wait_input(self._h, int(timeout_s * 1e6))
        else:
            time.sleep(timeout_s)

    def read_input(self) -> list[tuple[float, bytes, int, int, int]]:
        """[(perf_counter time, message, ordinal, epoch, frame, reflex)] received since the last call; `reflex`
        is the id of the reaction table that answered this note in the callback (0: none)."""
        out = []
        while self._h:
            n = self._lib.aj_read_input(self._h, self._in_buf, self.BATCH)
            for r in self._in_buf[:n]:
                out.append((self.to_perf(r.time_us), bytes(r.data[: r.size]), r.ordinal, r.epoch, r.frame, r.reflex))
            if n < self.BATCH:
                break
        return out

    def read_sent(self) -> list[tuple[float, bytes, int, int, bool, int]]:
        """[(perf_counter time, message, tag, ordinal at sending, at once, sample frame)] written since the last
        call; `at once` is False for what went out with the 0xF8 it was queued for (that ordinal's tick, exactly),
        True for the rest (sent now, late, a release, or with a later 0xF8 when its own never arrived)."""
        out = []
        while self._h:
            n = self._lib.aj_read_sent(self._h, self._out_buf, self.BATCH)
            for r in self._out_buf[:n]:
                out.append((self.to_perf(r.time_us), bytes(r.data[: r.size]), r.tag, r.ordinal, bool(r.late),
                            r.frame))
            if n < self.BATCH:
                break
        return out

    def stats(self) -> dict[str, int]:
        if self._h:
            self._lib.aj_stats(self._h, self._stats)
        return dict(zip(STATS, (int(v) for v in self._stats)))

    def sounding(self) -> list[tuple[int, int]]:
        buf = (ctypes.c_uint8 * (16 * 128))()
        if self._h:
            self._lib.aj_sounding(self._h, buf)
        return [(i // 128, i % 128) for i, v in enumerate(buf) if v]

    def thread_policy(self) -> int:
        """sched policy of JACK's thread for this client (0 SCHED_OTHER, 1 SCHED_FIFO; -1 unknown)."""
        return self._lib.aj_thread_policy(self._h)

    # ---- the graph -----------------------------------------------------------------------------
    def connect(self, src: str, dst: str) -> int:
        return self.jack.connect(self._lib.aj_client(self._h), src, dst)

    def ports(self, direction: str) -> list[str]:
        return self.jack.ports(self._lib.aj_client(self._h), direction)

    def stop_cycles(self) -> None:
        """Leaves the process graph: no cycle runs after this, so `stats` and `read_sent` are final."""
        if self._h:
            self._lib.aj_deactivate(self._h)
            self._cycles_stopped = True

    def close(self, flush_s: float = 0.5) -> None:
        """Stops the deadline thread, lets the commands already queued run (a few cycles), closes."""
        import time

        self.timed.close(panic=False)
        deadline = time.monotonic() + flush_s
        while self._h and self.pending() and not self._cycles_stopped and time.monotonic() < deadline:
            time.sleep(0.002)
        h, self._h = self._h, None
        if h:
            self._lib.aj_close(h)
