/* One live block of a timbre model, bends included, in one native call.
 *
 * The same maths as tuibend.model.timbre.ModelStream (decoder, bends, scaling, harmonic and
 * filtered-noise synths, partitioned reverb) for one voice and one block size, so a live block
 * costs one call: weights packed once into panels that stream through the caches, the
 * oscillators summed by a recurrence instead of a sine per harmonic and sample, the noise
 * filtered in the time domain. Everything is allocated at tb_create; tb_step allocates nothing.
 * Beside it, CREPE's network (tb_crepe_*) and the live analysis that feeds the model from a microphone
 * (tb_analysis_*: CREPE's estimates, the loudness through the same FFT, pitch per frame), also one call a block,
 * and the block's control values (tb_control_block: the faders' glides and the bends' derived rows).
 */
#define _GNU_SOURCE /* sincos */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PANEL 64  /* output columns per weight panel: 4 vectors of 16 floats */
#define MAX_FRAMES 64  /* the largest block: 4096 samples at a 64-sample hop (renders) */
#define AMX_ROWS 16    /* frames in one tile of rows */
#define LN_EPSILON 1e-3f
#define LEAKY_ALPHA 0.2f
#define TWO_PI 6.283185307179586

typedef float v16 __attribute__((vector_size(64)));

/* ----- memory: each object's buffers in an arena of its own -------------------------------------------------
 * The engine finds its caches cold at every block (other work ran on the core in between), and on a virtual
 * machine a cold read of a 4 KiB page also walks the host's page tables, themselves out of the caches. So every
 * buffer of a model, a CREPE network or a live analysis comes from chunks aligned to 2 MiB and marked for huge
 * pages where the system offers them (Linux's transparent huge pages): the weights a block reads take a few
 * translations instead of thousands, laid out in the order they are created, the order a block reads them
 * (the solo model's step paced at real time: 0.61-0.76 against 0.72-0.87 ms a block in 4 KiB pages, medians of
 * alternating runs on a 2-core AMD EPYC virtual machine). Every buffer is written when it is handed out: its pages
 * fault in (a huge page is zeroed, perhaps compacted first) as the object is made, never in a live block's first
 * call. An object's buffers live exactly as long as the object: it frees its arena whole. */
#define HUGE_PAGE ((size_t)2 << 20)
#define ARENA_CHUNK ((size_t)4 << 20)
#define ARENA_HEADER ((size_t)64)

typedef struct chunk { struct chunk *older; size_t used, size; } chunk_t;
typedef struct { chunk_t *newest; } arena_t;

static void *zalloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
/* size bytes (a multiple of HUGE_PAGE) on a HUGE_PAGE boundary, fresh from the system, zero. */
static void *chunk_map(size_t size) {
    size_t span = size + HUGE_PAGE;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    size_t lead = (HUGE_PAGE - (uintptr_t)p % HUGE_PAGE) % HUGE_PAGE;
    if (lead) munmap(p, lead);
    munmap(p + lead + size, span - lead - size);
#if defined(MADV_HUGEPAGE)
    madvise(p + lead, size, MADV_HUGEPAGE);  /* before the first touch: the pages are huge from the start */
#endif
    return p + lead;
}
static void chunk_unmap(chunk_t *c) { munmap(c, c->size); }
#else
static void *chunk_map(size_t size) { return zalloc(size); }
static void chunk_unmap(chunk_t *c) { free(c); }
#endif

/* bytes of zeros, 64-byte aligned, in the first chunk with room (a new one when none has), or NULL. */
static void *arena_alloc(arena_t *a, size_t bytes) {
    bytes = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    chunk_t *c = a->newest;
    while (c && c->size - c->used < bytes) c = c->older;
    if (!c) {
        size_t size = bytes + ARENA_HEADER > ARENA_CHUNK ? (bytes + ARENA_HEADER + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
                                                         : ARENA_CHUNK;
        c = chunk_map(size);
        if (!c) return NULL;
        *c = (chunk_t){a->newest, ARENA_HEADER, size};
        a->newest = c;
    }
    void *p = (char *)c + c->used;
    c->used += bytes;
    memset(p, 0, bytes);  /* zero already (fresh from chunk_map): written so its pages fault in now, not mid-block */
    return p;
}

static void arena_free(arena_t *a) {
    for (chunk_t *c = a->newest, *older; c; c = older) {
        older = c->older;
        chunk_unmap(c);
    }
}

#if defined(__SSE__)
#include <xmmintrin.h>
#define FLUSH_DENORMALS 0x8040u /* MXCSR flush-to-zero and denormals-are-zero: a decaying tail stays fast */
#endif

#if defined(__AVX512BF16__)
#include <immintrin.h>
#define HAVE_BF16 1
#else
#define HAVE_BF16 0
#endif

enum { POINT_FC1 = 16, POINT_GRU, POINT_FC2, POINT_AMPS, POINT_HARMONICS, POINT_NOISE };
enum { T_OSCILLATE, T_THRESHOLD, T_INVERT, T_ABLATE, T_SCALE, T_OFFSET, T_CLAMP, T_QUANTISE, T_NOISE,
       T_FREEZE, T_SMOOTH, T_PERMUTE, T_COUNT };
/* The transforms' names in their ids' order: Python numbers its registry's transforms by these. */
static const char *const TRANSFORM_NAMES[T_COUNT] = {
    "oscillate", "threshold", "invert", "ablate", "scale", "offset", "clamp", "quantise", "noise", "freeze",
    "smooth", "permute"};
#define TB_ABI_VERSION 9 /* raised whenever tb_config, tb_bend or a function is added or its arguments change */

typedef struct {
    int n_inputs;       /* decoder input keys, in the model's order */
    int input_is_f0[2]; /* 1: that key is f0_scaled, 0: ld_scaled */
    int ch, layers, rnn, n_harmonics, n_bands, hop, block_frames, reverb_parts;
    int bfloat16;       /* 1: weights and layer inputs in bfloat16 (float32 sums), where the CPU has it */
    int amp_linear;     /* 1: harmonic amplitudes interpolated linearly between frames, 0: ddsp's "window" */
    int int8;           /* 1: the GRU's recurrent kernel in 8 bits, where the CPU has AVX512-VNNI */
    float sample_rate, f0_range, ld_range, noise_bias;
    float output_gain;  /* the model's calibrated output level, a factor on the synthesised audio */
    uint64_t seed;
} tb_config;

/* A chain's block values as tuibend.bend.rig's ControlPlan and ControlState hold them (tb_control_block). */
enum { DERIVE_PHASE, DERIVE_REFRESH, DERIVE_ALPHA, DERIVE_COUNT };
/* The transforms with a derived row, in their kinds' order: Python numbers tuibend.bend.derive's by these. */
static const char *const DERIVATION_NAMES[DERIVE_COUNT] = {"oscillate", "freeze", "smooth"};
typedef struct {
    int32_t rows, frames, faders, derivations; /* value rows (the block number's row follows them), frames */
    double frame_rate;
    const int32_t *fader_rows;                 /* the row each fader fills */
    const int32_t *kinds, *sources, *derived;  /* per derivation: its kind, the row it reads, the row it fills */
    const double *decay_steps;                 /* the faders' one-pole factor after 1 .. frames frames */
    const double *targets;                     /* where each fader stood as the block began */
    double *current;                           /* the value each fader's last block ended on: moved on */
    const uint8_t *driven;                     /* 1: a lane or a morph filled this fader's row already */
    double *memory;                            /* what each derivation carries to the next block: moved on */
} tb_control;

typedef struct {
    int point, transform, units, row_proportion, row_a, row_b;
    float eligible;
    const float *ranks;
    const int32_t *permutation;
    uint64_t seed;
} tb_bend;

/* The live analysis' shape (tb_analysis_create), as tuibend.pitch.analysis.StreamingAnalyzer works it out. */
typedef struct {
    int hop;                     /* samples per output frame */
    int pitch_hop;               /* samples between CREPE estimates (an estimate centred on k * pitch_hop) */
    int n_fft;                   /* the loudness window, a power of two */
    int lead;                    /* zeros before sample 0 in a loudness window (n_fft / 2 centred, or 0) */
    int kept;                    /* samples of a loudness window read; its newest end beyond counts as zeros */
    int v3;                      /* 1: mean A-weighted power in dB (ddsp >= 2); 0: the mean of per-bin dB (v1) */
    int loudness_lag, pitch_lag; /* frames each feature runs behind the input */
    int low_bin, high_bin;       /* CREPE's bins searched */
    float voiced;                /* the confidence from which an estimate counts as voiced */
    float ref_db, range_db;      /* loudness reference and floor (-range_db) */
    float missing_db;            /* what restores a steady sound's level in a window read without its end */
} tb_analysis_config;

/* What a live input adds to the analysis (tb_analysis_create's `live`): the pitch each frame plays, as
 * tuibend.pitch.analysis.LiveFeatures works it out (an unvoiced frame holds the last voiced pitch, or at an
 * onset takes YIN's pitch of the newest samples; then the pitch shift). */
typedef struct {
    int onset;                  /* 1: an onset's unvoiced frames take YIN's pitch (OnsetPitch), 0: they hold */
    int onset_frames;           /* frames after quiet that count as an onset */
    int yin_min_lag, yin_max_lag, yin_integration; /* YIN over integration + max_lag samples, newest first */
    float yin_threshold;        /* YIN's dip */
    float onset_confidence;     /* YIN's confidence from which its pitch is taken */
    float sample_rate;
    float quiet_db;             /* the loudness below which the input is quiet */
    float resting_f0;           /* the pitch held before the first voiced frame (Hz, unshifted); 0: the tracker's */
    float pitch_ratio;          /* the pitch shift as a frequency ratio */
} tb_live_config;

/* A dense layer's weights in panels of PANEL output columns: float32 [n_in][PANEL], or bfloat16
 * pairs of consecutive inputs [n_in / 2][PANEL][2] (the operand order of AVX512-BF16's dot product). */
typedef struct {
    int n_in, n_out, n_panels;
    float *panels;
    uint32_t *pairs, *x_pairs;
    int8_t *quads;                  /* 8-bit weights, four consecutive inputs a column [n_in / 4][PANEL][4] */
    float *quad_scale, *quad_zero;  /* per column: the factor back to float, and the sum the inputs' offset adds */
    uint8_t *x_quads;               /* the input in 8 bits, a row per frame */
    float *x_steps;                 /* per frame: the factor back from its bytes */
    float *bias;
} dense_t;
typedef struct { dense_t dense; float *gamma, *beta; } fc_t;

typedef struct {
    tb_bend spec;
    float *ranks, *memory;
    int32_t *permutation;
} bend_t;

/* Every buffer a model owns beside its layers: element type, name, element count. The one table they are
 * declared, allocated and checked from (the model's arena frees them all at once); a count names the sizes
 * tb_create works out (F frames, widest row, block samples, u GRU units, ring = reverb partitions * (block + 1)). */
#define TB_BUFFERS(X)                                                                                        \
    /* state: the GRU's, the oscillators' last amplitudes, the noise and reverb tails, the reverb's ring */  \
    X(float, h, u) X(float, prev_amps, c->n_harmonics) X(float, noise_tail_buf, m->noise_tail)             \
    X(float, noise_delay_buf, m->noise_delay + 1) X(float, reverb_previous, block)                          \
    X(float, ring_re, ring) X(float, ring_im, ring)                                                          \
    /* constants: reverb partitions, the block-point FFT's twiddles, the real-FFT split's W_N^k, tables */  \
    X(float, part_re, ring) X(float, part_im, ring) X(float, twiddle_re, block) X(float, twiddle_im, block) \
    X(float, real_re, block + 1) X(float, real_im, block + 1) X(int, bit_reverse, block)                    \
    X(float, window_weights, c->hop) X(float, linear_weights, c->hop) X(float, noise_window, m->ir_size)    \
    X(float, cos_table, c->n_bands * m->ir_size)                                                             \
    /* scratch: a frame row per layer output, the synths' and the reverb's working space */                \
    X(float, fc1, frame_rows) X(float, projected, frame_rows) X(float, gru_out, frame_rows)                 \
    X(float, skip, frame_rows) X(float, fc2, frame_rows) X(float, raw, frame_rows) X(float, tmp, frame_rows) \
    X(float, amp_frames, frame_rows) X(float, tmp2, widest) X(float, noise_ir, F * m->ir_size)              \
    X(float, filtered_noise, block) X(float, own_noise, block) X(float, noise_buf, block + m->noise_tail)   \
    X(float, harmonic, block) X(float, f0_env, block) X(float, reverb_frame, 2 * block)                     \
    X(double, sin_prev, block) X(double, sin_cur, block) X(double, cos2, block) X(float, fft_re, block)     \
    X(float, fft_im, block) X(float, acc_re, block + 1) X(float, acc_im, block + 1)
#define DECLARE_BUFFER(type, name, count) type *name;

/* A radix-2 FFT of n complex points, and the split that makes it a real FFT of 2n samples: its tables and
 * working space, in buffers its owner allocates (fft_plan_init fills the tables). */
typedef struct {
    int n;
    int *bit_reverse;
    float *twiddle_re, *twiddle_im; /* W_n^k, k < n */
    float *real_re, *real_im;       /* W_2n^k, k <= n */
    float *re, *im;                 /* working space, n each */
} fft_plan;

typedef struct {
    tb_config c;
    int n_out, block, ir_size, noise_tail, noise_delay;  /* block: samples, also the FFT's complex points */
    fc_t *stacks[2];
    fc_t *out_stack;
    dense_t gru_in, gru_rec, dense_out;
    int n_bends;
    bend_t *bends;
    /* state */
    float prev_f0;
    double phase;
    int started;
    uint64_t block_index;
    int newest;
    float *x_in[2], *stack_out[2]; /* per input stack: its input row, its output rows */
    fft_plan plan;                 /* the reverb's, over the block's buffers */
    struct workers *workers;       /* helpers that share a block's batched layers (tb_threads), or NULL */
    arena_t arena;                 /* every buffer here, this struct too */
    TB_BUFFERS(DECLARE_BUFFER)
} tb_model;

static uint32_t bf16_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;  /* round to nearest even */
}

/* count floats as (count + 1) / 2 bfloat16 pairs, the last one's high half zero for an odd count. */
static void to_pairs(const float *x, size_t count, uint32_t *pairs) {
    size_t q = 0;
#if HAVE_BF16
    /* 32 at a time by the CPU's own conversion (rounding to nearest even, as bf16_bits) */
    for (; 2 * q + 32 <= count; q += 16)
        _mm512_storeu_si512(pairs + q, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 2 * q + 16),
                                                                     _mm512_loadu_ps(x + 2 * q)));
#endif
    for (; q < (count + 1) / 2; q++) {
        uint32_t high = 2 * q + 1 < count ? bf16_bits(x[2 * q + 1]) : 0;
        pairs[q] = bf16_bits(x[2 * q]) | high << 16;
    }
}

/* A dense layer's shape and bias, its weights not yet laid out. */
static int dense_shape(arena_t *a, dense_t *d, const float *bias, int n_in, int n_out) {
    d->n_in = n_in;
    d->n_out = n_out;
    d->n_panels = (n_out + PANEL - 1) / PANEL;
    d->bias = arena_alloc(a, sizeof(float) * d->n_panels * PANEL);
    if (!d->bias) return -1;
    if (bias) memcpy(d->bias, bias, sizeof(float) * n_out);
    return 0;
}

/* Weights [n_in, n_out] row-major -> panels of PANEL columns, zero-padded, float32 or bfloat16 pairs. */
static int dense_init(arena_t *a, dense_t *d, const float *kernel, const float *bias, int n_in, int n_out,
                      int bfloat16) {
    if (dense_shape(a, d, bias, n_in, n_out)) return -1;
    int pairs = (n_in + 1) / 2;
    if (bfloat16 && n_in > 1) {  /* a lone input (f0, loudness) keeps float32: in bfloat16 a pitch moves by cents */
        d->pairs = arena_alloc(a, sizeof(uint32_t) * (size_t)d->n_panels * pairs * PANEL);
        d->x_pairs = arena_alloc(a, sizeof(uint32_t) * MAX_FRAMES * pairs);
        if (!d->pairs || !d->x_pairs) return -1;
        static const float zeros[PANEL];  /* the row past an odd input count */
        for (int p = 0; p < d->n_panels; p++) {
            int columns = n_out - p * PANEL < PANEL ? n_out - p * PANEL : PANEL;
            for (int q = 0; q < pairs; q++) {
                const float *restrict low = kernel + (size_t)2 * q * n_out + (size_t)p * PANEL;
                const float *restrict high = 2 * q + 1 < n_in ? low + n_out : zeros;
                uint32_t *restrict into = d->pairs + ((size_t)p * pairs + q) * PANEL;
                for (int j = 0; j < columns; j++) into[j] = bf16_bits(low[j]) | bf16_bits(high[j]) << 16;
            }
        }
        return 0;
    }
    d->panels = arena_alloc(a, sizeof(float) * (size_t)d->n_panels * n_in * PANEL);
    if (!d->panels) return -1;
    for (int p = 0; p < d->n_panels; p++)
        for (int i = 0; i < n_in; i++)
            for (int j = 0; j < PANEL && p * PANEL + j < n_out; j++)
                d->panels[((size_t)p * n_in + i) * PANEL + j] = kernel[(size_t)i * n_out + p * PANEL + j];
    return 0;
}

static inline void store_rows(const dense_t *d, int p, const float *acc, int nf, int first, float *y, int ldy) {
    int cols = d->n_out - p * PANEL < PANEL ? d->n_out - p * PANEL : PANEL;
    for (int f = 0; f < nf; f++)
        memcpy(y + (size_t)(first + f) * ldy + p * PANEL, acc + f * PANEL, sizeof(float) * cols);
}

/* One panel for nf (a constant after inlining) frames from first: float32 weights. */
static inline __attribute__((always_inline)) void panel_f32(const dense_t *d, int p, const float *x, int first,
                                                            const int nf, float *y, int ldy) {
    const float *w = d->panels + (size_t)p * d->n_in * PANEL;
    v16 acc[4][4];
    for (int f = 0; f < nf; f++)
        for (int v = 0; v < 4; v++) memcpy(&acc[f][v], d->bias + p * PANEL + 16 * v, 64);
    for (int i = 0; i < d->n_in; i++, w += PANEL) {
        v16 w0, w1, w2, w3;
        memcpy(&w0, w, 64); memcpy(&w1, w + 16, 64); memcpy(&w2, w + 32, 64); memcpy(&w3, w + 48, 64);
        for (int f = 0; f < nf; f++) {
            float xv = x[(size_t)(first + f) * d->n_in + i];
            acc[f][0] += xv * w0; acc[f][1] += xv * w1; acc[f][2] += xv * w2; acc[f][3] += xv * w3;
        }
    }
    float out[4 * PANEL] __attribute__((aligned(64)));
    for (int f = 0; f < nf; f++) memcpy(out + f * PANEL, acc[f], sizeof(float) * PANEL);
    store_rows(d, p, out, nf, first, y, ldy);
}

#if !defined(__AVX512F__)
typedef float v8 __attribute__((vector_size(32)));

/* One panel for one frame in 8-float vectors: eight sums stay in registers. */
static inline void panel_f32_narrow(const dense_t *d, int p, const float *x, int frame, float *y, int ldy) {
    const float *w = d->panels + (size_t)p * d->n_in * PANEL, *row = x + (size_t)frame * d->n_in;
    v8 acc[PANEL / 8];
    memcpy(acc, d->bias + p * PANEL, sizeof(acc));
    for (int i = 0; i < d->n_in; i++, w += PANEL) {
        float xv = row[i];
        for (int v = 0; v < PANEL / 8; v++) {
            v8 wv;
            memcpy(&wv, w + 8 * v, sizeof(wv));
            acc[v] += xv * wv;
        }
    }
    float out[PANEL] __attribute__((aligned(32)));
    memcpy(out, acc, sizeof(out));
    store_rows(d, p, out, 1, frame, y, ldy);
}
#endif

#if HAVE_BF16
/* One panel for nf frames from first: bfloat16 weight pairs times bfloat16 input pairs, float32 sums. */
static inline __attribute__((always_inline)) void panel_bf16(const dense_t *d, int p, int first, const int nf,
                                                             float *y, int ldy) {
    int pairs = (d->n_in + 1) / 2;
    const uint32_t *w = d->pairs + (size_t)p * pairs * PANEL, *xp = d->x_pairs + (size_t)first * pairs;
    __m512 acc[4][4];
    for (int f = 0; f < nf; f++)
        for (int v = 0; v < 4; v++) acc[f][v] = _mm512_loadu_ps(d->bias + p * PANEL + 16 * v);
    for (int q = 0; q < pairs; q++, w += PANEL) {
        __m512bh w0 = (__m512bh)_mm512_load_si512(w), w1 = (__m512bh)_mm512_load_si512(w + 16);
        __m512bh w2 = (__m512bh)_mm512_load_si512(w + 32), w3 = (__m512bh)_mm512_load_si512(w + 48);
        for (int f = 0; f < nf; f++) {
            __m512bh xb = (__m512bh)_mm512_set1_epi32((int)xp[(size_t)f * pairs + q]);
            acc[f][0] = _mm512_dpbf16_ps(acc[f][0], xb, w0);
            acc[f][1] = _mm512_dpbf16_ps(acc[f][1], xb, w1);
            acc[f][2] = _mm512_dpbf16_ps(acc[f][2], xb, w2);
            acc[f][3] = _mm512_dpbf16_ps(acc[f][3], xb, w3);
        }
    }
    float out[4 * PANEL] __attribute__((aligned(64)));
    for (int f = 0; f < nf; f++)
        for (int v = 0; v < 4; v++) _mm512_store_ps(out + f * PANEL + 16 * v, acc[f][v]);
    store_rows(d, p, out, nf, first, y, ldy);
}
#endif

#if HAVE_BF16 && defined(__x86_64__)
/* Intel's AMX tiles multiply bfloat16 pairs sixteen rows at a time, many times the vector units' rate. */
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define HAVE_AMX 1
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
typedef struct __attribute__((packed)) {
    uint8_t palette, start_row, reserved[14];
    uint16_t columns_bytes[16];
    uint8_t rows[16];
} amx_config_t;

/* The CPU has AMX-BF16 and the kernel lets this process use its tile registers. */
static int amx_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 22 & 1) || !(d >> 24 & 1)) return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

/* Whether this process uses AMX, asked once. */
static int amx_enabled(void) {
    static int state = -1;
    if (state < 0) state = amx_usable();
    return state;
}

/* Eight tiles of 64 bytes a row: `rows` rows each, 16 for those in the `sixteen_rows` bit mask. */
AMX_TARGET static void amx_configure(int rows, unsigned sixteen_rows) {
    amx_config_t config;
    memset(&config, 0, sizeof(config));
    config.palette = 1;
    for (int i = 0; i < 8; i++) {
        config.rows[i] = sixteen_rows >> i & 1 ? 16 : rows;
        config.columns_bytes[i] = 64;
    }
    _tile_loadconfig(&config);
}

/* A dense layer's bfloat16 panels in AMX tiles, its inputs already in x_pairs: all the block's frames in one
 * tile of rows (tmm4), a panel's 64 columns in four tiles of sums (tmm0-3, started from the bias), the
 * weights 16 pairs by 16 columns at a time (tmm5-7). */
AMX_TARGET static void dense_amx(const dense_t *d, int frames, float *y, int ldy, int begin, int end,
                                  int reverse) {
    int pairs = (d->n_in + 1) / 2, configured = 0;
    float out[AMX_ROWS * PANEL] __attribute__((aligned(64)));
    for (int i = begin; i < end; i++) {
        int p = reverse ? end - 1 - (i - begin) : i;
        const float *bias = d->bias + p * PANEL;
        /* a block of more frames than a tile's rows: the panel, read from memory once, stays in L2 */
        for (int first = 0; first < frames; first += AMX_ROWS) {
            int rows = frames - first < AMX_ROWS ? frames - first : AMX_ROWS;
            if (rows != configured) amx_configure(configured = rows, 0xe0);
            _tile_loadd(0, bias, 0); _tile_loadd(1, bias + 16, 0);
            _tile_loadd(2, bias + 32, 0); _tile_loadd(3, bias + 48, 0);
            const uint32_t *w = d->pairs + (size_t)p * pairs * PANEL, *x = d->x_pairs + (size_t)first * pairs;
            for (int q = 0; q < pairs; q += 16, w += 16 * PANEL) {
                _tile_loadd(4, x + q, pairs * 4);
                _tile_loadd(5, w, PANEL * 4); _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(6, w + 16, PANEL * 4); _tile_dpbf16ps(1, 4, 6);
                _tile_loadd(7, w + 32, PANEL * 4); _tile_dpbf16ps(2, 4, 7);
                _tile_loadd(5, w + 48, PANEL * 4); _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, out, PANEL * 4); _tile_stored(1, out + 16, PANEL * 4);
            _tile_stored(2, out + 32, PANEL * 4); _tile_stored(3, out + 48, PANEL * 4);
            store_rows(d, p, out, rows, first, y, ldy);
        }
    }
    _tile_release();
}

#else
#define HAVE_AMX 0
static int amx_enabled(void) { return 0; }
#endif

/* A dense layer's input rows [first, end) as its weights read them: bfloat16 pairs where the layer has them
 * (float32 panels read x itself). */
static void dense_prepare(const dense_t *d, const float *x, int first, int end) {
    if (!d->pairs) return;
    int pairs = (d->n_in + 1) / 2;
    for (int f = first; f < end; f++) to_pairs(x + (size_t)f * d->n_in, d->n_in, d->x_pairs + (size_t)f * pairs);
}

/* y[f][columns of panels begin .. end - 1] = x[f] @ kernel + bias for F frames, the rows prepared
 * (dense_prepare); x rows have stride n_in, y rows stride ldy. ``reverse``: the panels in reverse order. A layer
 * run once per frame (the GRU's recurrence) alternates direction, so a pass starts on the panels the last one
 * ended on, still in the core's L2 cache. */
static void dense_panels(const dense_t *d, const float *x, int frames, float *y, int ldy, int begin, int end,
                         int reverse) {
#if HAVE_BF16
    if (d->pairs) {
        if ((d->n_in + 1) / 2 % 16 == 0 && amx_enabled()) {
            dense_amx(d, frames, y, ldy, begin, end, reverse);
            return;
        }
        for (int i = begin; i < end; i++)  /* each panel read once a block, whatever its frames */
            for (int first = 0; first < frames; first += 4) {
                int p = reverse ? end - 1 - (i - begin) : i;
                if (frames - first >= 4) panel_bf16(d, p, first, 4, y, ldy);
                else if (frames - first == 1) panel_bf16(d, p, first, 1, y, ldy);
                else panel_bf16(d, p, first, frames - first, y, ldy);
            }
        return;
    }
#endif
#if defined(__AVX512F__)
    for (int i = begin; i < end; i++)  /* each panel read once a block, whatever its frames */
        for (int first = 0; first < frames; first += 4) {
            int p = reverse ? end - 1 - (i - begin) : i;
            if (frames - first >= 4) panel_f32(d, p, x, first, 4, y, ldy);
            else if (frames - first == 1) panel_f32(d, p, x, first, 1, y, ldy);
            else panel_f32(d, p, x, first, frames - first, y, ldy);
        }
#else
    /* Sixteen 256-bit registers hold one frame's 64 sums, not four frames' (the 512-bit form spilled to
     * memory on every step: 5.4 ms a block on an AVX2 machine): one frame at a time, in 8-float vectors. */
    for (int i = begin; i < end; i++) {
        int p = reverse ? end - 1 - (i - begin) : i;
        for (int f = 0; f < frames; f++) panel_f32_narrow(d, p, x, f, y, ldy);
    }
#endif
}

static void dense_apply(const dense_t *d, const float *x, int frames, float *y, int ldy) {
    dense_prepare(d, x, 0, frames);
    dense_panels(d, x, frames, y, ldy, 0, d->n_panels, 0);
}

/* A dense layer in 8 bits. The GRU's recurrent kernel, read once a frame, is 1.5 MB in bfloat16 for 512 units:
 * more than some cores' L2 (1 MB on AMD's Zen 4), so every frame streamed it from L3; in 8 bits it takes half.
 * (The input projection in 8 bits too moved the small model's take 1.5 % RMS off float32: it stays bfloat16.)
 * Weights: per column, scaled to its largest magnitude (127 steps each side). Inputs: per frame, scaled to the
 * frame's largest magnitude, offset by 128 to the unsigned bytes AVX512-VNNI's dot products take beside signed
 * ones; the offset's share (128 times the column's sum) comes off after. */
#if HAVE_BF16 && defined(__x86_64__) && defined(__GNUC__)
#define HAVE_INT8 1
#define VNNI_TARGET __attribute__((target("avx512vnni")))
static int int8_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}
#else
#define HAVE_INT8 0
static int int8_usable(void) { return 0; }
#endif

/* kernel [n_in][n_out] -> 8-bit panels (n_in a multiple of 4) [panel][n_in / 4][PANEL][4]. */
static int dense_int8_init(arena_t *a, dense_t *d, const float *kernel, const float *bias, int n_in,
                           int n_out) {
    if (dense_shape(a, d, bias, n_in, n_out)) return -1;
    int groups = n_in / 4;
    d->quads = arena_alloc(a, (size_t)d->n_panels * groups * PANEL * 4);
    d->quad_scale = arena_alloc(a, sizeof(float) * d->n_panels * PANEL);
    d->quad_zero = arena_alloc(a, sizeof(float) * d->n_panels * PANEL);
    d->x_quads = arena_alloc(a, (size_t)MAX_FRAMES * n_in);
    d->x_steps = arena_alloc(a, sizeof(float) * MAX_FRAMES);
    if (!d->quads || !d->quad_scale || !d->quad_zero || !d->x_quads || !d->x_steps) return -1;
    /* row by row, as the kernel lies in memory (column by column, each read was a cache miss: 4 ms a model) */
    float *peak = d->quad_scale, *sum = d->quad_zero;  /* the columns' largest magnitudes, then their steps */
    for (int i = 0; i < n_in; i++)
        for (int column = 0; column < n_out; column++) {
            float magnitude = fabsf(kernel[(size_t)i * n_out + column]);
            peak[column] = magnitude > peak[column] ? magnitude : peak[column];
        }
    for (int column = 0; column < n_out; column++) peak[column] = peak[column] > 0.0f ? peak[column] / 127.0f : 1.0f;
    for (int i = 0; i < n_in; i++)
        for (int column = 0; column < n_out; column++) {
            int q = (int)lrintf(kernel[(size_t)i * n_out + column] / peak[column]);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            d->quads[(((size_t)(column / PANEL) * groups + i / 4) * PANEL + column % PANEL) * 4 + i % 4] = (int8_t)q;
            sum[column] += (float)q;
        }
    for (int column = 0; column < n_out; column++) sum[column] *= 128.0f;
    return 0;
}

#if HAVE_INT8
/* One 8-bit panel for nf frames from first (their bytes in d->x_quads, their steps in x_steps). */
VNNI_TARGET static inline __attribute__((always_inline)) void panel_int8(const dense_t *d, int p, int first,
                                                                         const int nf, const float *x_steps,
                                                                         float *y, int ldy) {
    int groups = d->n_in / 4;
    const int8_t *w = d->quads + (size_t)p * groups * PANEL * 4;
    const uint8_t *xq = d->x_quads + (size_t)first * d->n_in;
    __m512i acc[4][4];
    for (int f = 0; f < nf; f++)
        for (int v = 0; v < 4; v++) acc[f][v] = _mm512_setzero_si512();
    for (int g = 0; g < groups; g++, w += PANEL * 4) {
        __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 64);
        __m512i w2 = _mm512_load_si512(w + 128), w3 = _mm512_load_si512(w + 192);
        for (int f = 0; f < nf; f++) {
            int32_t quad;
            memcpy(&quad, xq + (size_t)f * d->n_in + 4 * g, 4);
            __m512i xb = _mm512_set1_epi32(quad);
            acc[f][0] = _mm512_dpbusd_epi32(acc[f][0], xb, w0);
            acc[f][1] = _mm512_dpbusd_epi32(acc[f][1], xb, w1);
            acc[f][2] = _mm512_dpbusd_epi32(acc[f][2], xb, w2);
            acc[f][3] = _mm512_dpbusd_epi32(acc[f][3], xb, w3);
        }
    }
    float out[4 * PANEL] __attribute__((aligned(64)));
    for (int f = 0; f < nf; f++) {
        __m512 step = _mm512_set1_ps(x_steps[first + f]);
        for (int v = 0; v < 4; v++) {
            int at = p * PANEL + 16 * v;
            __m512 sum = _mm512_sub_ps(_mm512_cvtepi32_ps(acc[f][v]), _mm512_loadu_ps(d->quad_zero + at));
            __m512 scale = _mm512_mul_ps(step, _mm512_loadu_ps(d->quad_scale + at));
            _mm512_store_ps(out + f * PANEL + 16 * v, _mm512_fmadd_ps(sum, scale, _mm512_loadu_ps(d->bias + at)));
        }
    }
    store_rows(d, p, out, nf, first, y, ldy);
}

/* Rows [first, end) of a layer's input in 8 bits (dense_int8_init): each frame scaled to its largest magnitude. */
static void int8_prepare(const dense_t *d, const float *x, int first, int end) {
    for (int f = first; f < end; f++) {
        const float *row = x + (size_t)f * d->n_in;
        float peak = 0.0f;
        for (int i = 0; i < d->n_in; i++) {
            float magnitude = fabsf(row[i]);
            peak = magnitude > peak ? magnitude : peak;
        }
        float inverse = peak > 0.0f ? 127.0f / peak : 0.0f;
        d->x_steps[f] = peak / 127.0f;
        uint8_t *bytes = d->x_quads + (size_t)f * d->n_in;
        for (int i = 0; i < d->n_in; i++) bytes[i] = (uint8_t)(lrintf(row[i] * inverse) + 128);
    }
}

/* dense_panels' product from the 8-bit panels, the rows prepared (int8_prepare). */
VNNI_TARGET static void int8_panels(const dense_t *d, int frames, float *y, int ldy, int begin, int end,
                                    int reverse) {
    for (int i = begin; i < end; i++)
        for (int first = 0; first < frames; first += 4) {
            int p = reverse ? end - 1 - (i - begin) : i;
            if (frames - first >= 4) panel_int8(d, p, first, 4, d->x_steps, y, ldy);
            else if (frames - first == 1) panel_int8(d, p, first, 1, d->x_steps, y, ldy);
            else panel_int8(d, p, first, frames - first, d->x_steps, y, ldy);
        }
}
#else
static void int8_prepare(const dense_t *d, const float *x, int first, int end) {
    (void)d; (void)x; (void)first; (void)end;
}
static void int8_panels(const dense_t *d, int frames, float *y, int ldy, int begin, int end, int reverse) {
    (void)d; (void)frames; (void)y; (void)ldy; (void)begin; (void)end; (void)reverse;
}
#endif

/* ----- a block's batched layers split across cores, for renders of files --------------------------------------
 * The live engine steps one block at a time on its model thread and never asks for this (tb_threads): a render
 * has every core to itself, as TensorFlow's own resynthesis does. The caller and its helpers each take a share
 * of one job (a range of a layer's panels, or of a block's frames), so every sum is computed as by one thread, in
 * the same order: the output is the same to the bit. Between jobs a helper spins (a block's next layer follows
 * within microseconds), and sleeps once a few milliseconds pass without one. */
#define MAX_PARTS 8
#define SPIN_ROUNDS 200000

typedef void (*part_fn)(const void *job, int part, int parts);

/* Items [*begin, *end) of n that part `part` of `parts` takes. */
static void share(int n, int part, int parts, int *begin, int *end) {
    *begin = (int)((int64_t)n * part / parts);
    *end = (int)((int64_t)n * (part + 1) / parts);
}

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <stdatomic.h>

struct workers;
typedef struct { struct workers *workers; int part; } helper_t;

struct workers {
    int parts;                   /* the caller and parts - 1 helpers */
    pthread_t threads[MAX_PARTS - 1];
    helper_t helpers[MAX_PARTS - 1];
    pthread_mutex_t lock;        /* guards sleeping, and quit's setting */
    pthread_cond_t wake;
    int sleeping, quit;
    _Atomic unsigned posted;     /* jobs posted so far */
    _Atomic unsigned finished;   /* helpers done with the latest */
    part_fn run;
    const void *job;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *helper_main(void *arg) {
    helper_t *h = arg;
    struct workers *w = h->workers;
#if defined(FLUSH_DENORMALS)
    _mm_setcsr(_mm_getcsr() | FLUSH_DENORMALS);  /* as tb_step sets it for the caller's share */
#endif
    unsigned seen = 0;
    for (;;) {
        unsigned posted;
        for (int spins = 0; (posted = atomic_load_explicit(&w->posted, memory_order_acquire)) == seen;) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&w->lock);
            w->sleeping++;
            while (atomic_load_explicit(&w->posted, memory_order_acquire) == seen) pthread_cond_wait(&w->wake, &w->lock);
            w->sleeping--;
            pthread_mutex_unlock(&w->lock);
            spins = 0;
        }
        seen = posted;
        if (w->quit) return NULL;
        w->run(w->job, h->part, w->parts);
        atomic_fetch_add_explicit(&w->finished, 1, memory_order_release);
    }
}

/* Runs run(job, part, parts) for every part, the caller's share here; returns once all are done. */
static void run_parts(struct workers *w, part_fn run, const void *job) {
    if (!w) {
        run(job, 0, 1);
        return;
    }
    w->run = run;
    w->job = job;
    atomic_store_explicit(&w->finished, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->posted, 1, memory_order_release);
    pthread_mutex_lock(&w->lock);
    if (w->sleeping) pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    run(job, 0, w->parts);
    while (atomic_load_explicit(&w->finished, memory_order_acquire) < (unsigned)(w->parts - 1)) cpu_relax();
}

static void workers_destroy(struct workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    atomic_fetch_add_explicit(&w->posted, 1, memory_order_release);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->parts - 1; i++) pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* The caller and up to parts - 1 helpers (fewer if the system starts fewer threads); NULL for one part. */
static struct workers *workers_create(int parts) {
    if (parts < 2) return NULL;
    struct workers *w = zalloc(sizeof(struct workers));
    if (!w) return NULL;
    if (pthread_mutex_init(&w->lock, NULL)) {
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->wake, NULL)) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    w->parts = 1;
    for (int i = 0; i < parts - 1; i++) {
        w->helpers[i] = (helper_t){w, i + 1};
        if (pthread_create(&w->threads[i], NULL, helper_main, &w->helpers[i])) break;
        w->parts = i + 2;
    }
    if (w->parts < 2) {
        workers_destroy(w);
        return NULL;
    }
    return w;
}

static int workers_parts(const struct workers *w) { return w ? w->parts : 1; }
#else
struct workers { int parts; };
static void run_parts(struct workers *w, part_fn run, const void *job) { (void)w; run(job, 0, 1); }
static void workers_destroy(struct workers *w) { (void)w; }
static struct workers *workers_create(int parts) { (void)parts; return NULL; }
static int workers_parts(const struct workers *w) { (void)w; return 1; }
#endif

/* A dense layer (bfloat16, float32 or 8-bit panels) over a block: its rows prepared in shares of frames, then
 * its panels in shares of panels, each share in the direction asked (see dense_panels). */
typedef struct { const dense_t *d; const float *x; int frames; float *y; int ldy, reverse; } dense_job_t;

static void prepare_part(const void *job, int part, int parts) {
    const dense_job_t *j = job;
    int begin, end;
    share(j->frames, part, parts, &begin, &end);
    if (j->d->quads) int8_prepare(j->d, j->x, begin, end);
    else dense_prepare(j->d, j->x, begin, end);
}

static void panels_part(const void *job, int part, int parts) {
    const dense_job_t *j = job;
    int begin, end;
    share(j->d->n_panels, part, parts, &begin, &end);
    if (j->d->quads) int8_panels(j->d, j->frames, j->y, j->ldy, begin, end, j->reverse);
    else dense_panels(j->d, j->x, j->frames, j->y, j->ldy, begin, end, j->reverse);
}

static void dense_shared(struct workers *w, const dense_t *d, const float *x, int frames, float *y, int ldy,
                         int reverse) {
    dense_job_t job = {d, x, frames, y, ldy, reverse};
    if (frames == 1) prepare_part(&job, 0, 1);  /* one row: not worth a share */
    else run_parts(w, prepare_part, &job);
    run_parts(w, panels_part, &job);
}

static int fc_init(arena_t *a, fc_t *fc, const float **w, int n_in, int ch, int bfloat16) {
    if (dense_init(a, &fc->dense, w[0], w[1], n_in, ch, bfloat16)) return -1;
    fc->gamma = arena_alloc(a, sizeof(float) * ch);
    fc->beta = arena_alloc(a, sizeof(float) * ch);
    if (!fc->gamma || !fc->beta) return -1;
    memcpy(fc->gamma, w[2], sizeof(float) * ch);
    memcpy(fc->beta, w[3], sizeof(float) * ch);
    return 0;
}

/* The sum of x[i], or with ``squares`` of (x[i] - centre)^2, in sixteen lanes (vectors; a sum in one
 * register is a chain of dependent adds). */
static float lane_sum(const float *restrict x, int n, float centre, int squares) {
    float lanes[16] = {0}, total = 0.0f;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            float v = x[i + k] - centre;
            lanes[k] += squares ? v * v : v;
        }
    for (; i < n; i++) total += squares ? (x[i] - centre) * (x[i] - centre) : x[i] - centre;
    for (int k = 0; k < 16; k++) total += lanes[k];
    return total;
}

/* ddsp's Fc after its dense layer: layer normalisation and leaky ReLU, in place over rows [first, end) of y. */
static void fc_normalise(const fc_t *fc, float *y, int first, int end) {
    int ch = fc->dense.n_out;
    const float *restrict gamma = fc->gamma, *restrict beta = fc->beta;
    for (int f = first; f < end; f++) {
        float *restrict row = y + (size_t)f * ch;
        float mean = lane_sum(row, ch, 0.0f, 0) / ch;
        float scale = 1.0f / sqrtf(lane_sum(row, ch, mean, 1) / ch + LN_EPSILON);
        for (int u = 0; u < ch; u++) {
            float v = (row[u] - mean) * scale * gamma[u] + beta[u];
            row[u] = v >= 0.0f ? v : LEAKY_ALPHA * v;
        }
    }
}

typedef struct { const fc_t *fc; float *y; int frames; } normalise_job_t;

static void normalise_part(const void *job, int part, int parts) {
    const normalise_job_t *j = job;
    int begin, end;
    share(j->frames, part, parts, &begin, &end);
    fc_normalise(j->fc, j->y, begin, end);
}

/* ddsp's Fc: dense, layer normalisation, leaky ReLU, into y [frames][ch]. */
static void fc_apply(struct workers *w, const fc_t *fc, const float *x, int frames, float *y) {
    dense_shared(w, &fc->dense, x, frames, y, fc->dense.n_out, 0);
    normalise_job_t job = {fc, y, frames};
    run_parts(w, normalise_part, &job);
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* e^x within 2 ulp (Cephes' polynomial), branch-free so that loops of it compile to vectors: the GRU's
 * gates, 3 * units a frame, took as long as its recurrent product through libm's scalar calls. */
static inline float exp_vector(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round(x / ln 2) */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float sigmoid_vector(float x) { return 1.0f / (1.0f + exp_vector(-x)); }

static inline float tanh_vector(float x) { return 2.0f / (1.0f + exp_vector(-2.0f * x)) - 1.0f; }

/* One GRU step's gates from the input's projection xp and the state's hp ([z, r, n] each), into the state h.
 * The pointers are parameters so that their restrict holds: GCC ignores it on local pointers, and the loop,
 * versioned behind an overlap check, ran as scalar code. */
static void gru_gates(float *restrict h, const float *restrict hp, const float *restrict xp, int u) {
    for (int i = 0; i < u; i++) {
        float z = sigmoid_vector(xp[i] + hp[i]), r = sigmoid_vector(xp[u + i] + hp[u + i]);
        float n = tanh_vector(xp[2 * u + i] + r * hp[2 * u + i]);
        h[i] = z * h[i] + (1.0f - z) * n;
    }
}

static float exp_sigmoid(float x) { return 2.0f * powf(sigmoidf(x), logf(10.0f)) + 1e-7f; }

/* splitmix64 over a counter: a draw depends only on its key and index, never on what came before. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float uniform01(uint64_t key, uint64_t index) {
    return (float)(mix64(key + 0x9e3779b97f4a7c15ULL * (index + 1)) >> 40) * (1.0f / 16777216.0f);
}

static float gaussian(uint64_t key, uint64_t index) {
    float u1 = uniform01(key, 2 * index) + 1.0f / 33554432.0f, u2 = uniform01(key, 2 * index + 1);
    return sqrtf(-2.0f * logf(u1)) * cosf((float)TWO_PI * u2);
}

/* The bends at one point, in chain order: a + w * (T(a) - a) per unit and frame. */
static void apply_bends(tb_model *m, int point, float *a, int frames, int units, int lda, const float *values,
                        uint64_t counter) {
    int F = m->c.block_frames;
    for (int b = 0; b < m->n_bends; b++) {
        bend_t *bend = &m->bends[b];
        const tb_bend *s = &bend->spec;
        if (s->point != point) continue;
        const float *pa = s->row_a >= 0 ? values + (size_t)s->row_a * F : NULL;
        const float *pb = s->row_b >= 0 ? values + (size_t)s->row_b * F : NULL;
        for (int f = 0; f < frames; f++) {
            float *row = a + (size_t)f * lda, *t = m->tmp2;
            float proportion = values[(size_t)s->row_proportion * F + f] * s->eligible;
            switch (s->transform) {
            case T_OSCILLATE: {
                float add = sinf(pa[f]) * pb[f];
                for (int u = 0; u < units; u++) t[u] = row[u] + add;
                break;
            }
            case T_THRESHOLD: {
                float low = row[0], high = row[0];
                for (int u = 1; u < units; u++) { low = fminf(low, row[u]); high = fmaxf(high, row[u]); }
                for (int u = 0; u < units; u++) t[u] = row[u] < pa[f] ? low : high;
                break;
            }
            case T_INVERT: for (int u = 0; u < units; u++) t[u] = 1.0f - row[u]; break;
            case T_ABLATE: for (int u = 0; u < units; u++) t[u] = 0.0f; break;
            case T_SCALE: for (int u = 0; u < units; u++) t[u] = row[u] * pa[f]; break;
            case T_OFFSET: for (int u = 0; u < units; u++) t[u] = row[u] + pa[f]; break;
            case T_CLAMP: {
                float low = pa[f], high = fmaxf(pa[f], pb[f]);
                for (int u = 0; u < units; u++) t[u] = fminf(fmaxf(row[u], low), high);
                break;
            }
            case T_QUANTISE: {
                float step = fmaxf(pa[f], 1e-3f);
                for (int u = 0; u < units; u++) t[u] = nearbyintf(row[u] / step) * step;
                break;
            }
            case T_NOISE: {
                uint64_t key = mix64(mix64(s->seed) + counter);  /* drawn only for the units the fader reaches */
                for (int u = 0; u < units; u++)
                    t[u] = bend->ranks[u] < proportion ? row[u] + gaussian(key, (uint64_t)f * units + u) * pa[f]
                                                        : row[u];
                break;
            }
            case T_FREEZE:
                for (int u = 0; u < units; u++) {
                    if (pa[f] > 0.5f) bend->memory[u] = row[u];
                    t[u] = bend->memory[u];
                }
                break;
            case T_SMOOTH:
                for (int u = 0; u < units; u++) {
                    bend->memory[u] += pa[f] * (row[u] - bend->memory[u]);
                    t[u] = bend->memory[u];
                }
                break;
            case T_PERMUTE: for (int u = 0; u < units; u++) t[u] = row[bend->permutation[u]]; break;
            default: for (int u = 0; u < units; u++) t[u] = row[u];
            }
            /* each unit's share of the bend, clamped to [0, 1] by comparisons (fmaxf and fminf were libm
             * calls, 5 % of a small model's block, and kept the loop scalar); the same value, NaN taken as 0 */
            for (int u = 0; u < units; u++) {
                float w = proportion - bend->ranks[u];
                w = w > 0.0f ? w : 0.0f;
                w = w < 1.0f ? w : 1.0f;
                row[u] += w * (t[u] - row[u]);
            }
        }
    }
}

static void fft_plan_init(const fft_plan *p) {
    int n = p->n, bits = 0;
    while ((1 << bits) < n) bits++;
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int bit = 0; bit < bits; bit++) r |= ((i >> bit) & 1) << (bits - 1 - bit);
        p->bit_reverse[i] = r;
        p->twiddle_re[i] = (float)cos(-TWO_PI * i / n);
        p->twiddle_im[i] = (float)sin(-TWO_PI * i / n);
    }
    for (int k = 0; k <= n; k++) {
        p->real_re[k] = (float)cos(-TWO_PI * k / (2 * n));
        p->real_im[k] = (float)sin(-TWO_PI * k / (2 * n));
    }
}

/* In-place complex FFT of p->n points (radix 2, split real and imaginary arrays). */
static void fft(const fft_plan *p, float *re, float *im) {
    int n = p->n;
    for (int i = 0; i < n; i++) {
        int j = p->bit_reverse[i];
        if (i < j) {
            float t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        int half = len >> 1, stride = n / len;
        for (int start = 0; start < n; start += len)
            for (int k = 0; k < half; k++) {
                float wr = p->twiddle_re[k * stride], wi = p->twiddle_im[k * stride];
                int a = start + k, b = a + half;
                float xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr; im[b] = im[a] - xi;
                re[a] += xr; im[a] += xi;
            }
    }
}

/* Spectrum X[0..M] of 2M real samples, by one M-point complex FFT of the even/odd pairs. */
static void real_fft(const fft_plan *p, const float *x, float *out_re, float *out_im) {
    int n = p->n;
    float *re = p->re, *im = p->im;
    for (int i = 0; i < n; i++) { re[i] = x[2 * i]; im[i] = x[2 * i + 1]; }
    fft(p, re, im);
    for (int k = 0; k <= n; k++) {
        int a = k % n, b = (n - k) % n;
        float er = 0.5f * (re[a] + re[b]), ei = 0.5f * (im[a] - im[b]);   /* E = (Z[k] + conj Z[-k]) / 2 */
        float or_ = 0.5f * (im[a] + im[b]), oi = -0.5f * (re[a] - re[b]); /* O = (Z[k] - conj Z[-k]) / 2i */
        float wr = p->real_re[k], wi = p->real_im[k];
        out_re[k] = er + or_ * wr - oi * wi;
        out_im[k] = ei + or_ * wi + oi * wr;
    }
}

/* 2M real samples from a Hermitian spectrum X[0..M] (the inverse of real_fft, scaled 1/2M). */
static void real_ifft(const fft_plan *p, const float *in_re, const float *in_im, float *x) {
    int n = p->n;
    float *re = p->re, *im = p->im;
    for (int k = 0; k < n; k++) {
        float ar = in_re[k], ai = in_im[k], br = in_re[n - k], bi = -in_im[n - k]; /* b = conj X[M-k] */
        float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
        float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);
        float wr = p->real_re[k], wi = -p->real_im[k]; /* W^-k */
        float or_ = dr * wr - di * wi, oi = dr * wi + di * wr;
        /* Z = E + i O, inverse by conjugation around the forward transform */
        re[k] = er - oi;
        im[k] = -(ei + or_);
    }
    fft(p, re, im);
    float scale = 1.0f / n;
    for (int i = 0; i < n; i++) { x[2 * i] = re[i] * scale; x[2 * i + 1] = -im[i] * scale; }
}

static int is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

static void reset_state(tb_model *m) {
    const tb_config *c = &m->c;
    memset(m->h, 0, sizeof(float) * c->rnn);
    memset(m->prev_amps, 0, sizeof(float) * c->n_harmonics);
    m->prev_f0 = 0.0f;
    m->phase = 0.0;
    m->started = 0;
    m->block_index = 0;
    memset(m->noise_tail_buf, 0, sizeof(float) * m->noise_tail);
    memset(m->noise_delay_buf, 0, sizeof(float) * (m->noise_delay + 1));
    memset(m->reverb_previous, 0, sizeof(float) * m->block);
    if (c->reverb_parts) {
        memset(m->ring_re, 0, sizeof(float) * (size_t)c->reverb_parts * (m->block + 1));
        memset(m->ring_im, 0, sizeof(float) * (size_t)c->reverb_parts * (m->block + 1));
    }
    m->newest = c->reverb_parts ? c->reverb_parts - 1 : 0;
    for (int b = 0; b < m->n_bends; b++)
        if (m->bends[b].memory) memset(m->bends[b].memory, 0, sizeof(float) * m->bends[b].spec.units);
}

void tb_destroy(tb_model *m);

/* weights: per input stack and layer kernel, bias, gamma, beta; the GRU's kernel, recurrent kernel
 * and bias [2, 3u]; per output-stack layer kernel, bias, gamma, beta; dense_out kernel and bias.
 * partitions: the reverb response's partition spectra [parts][block + 1], real and imaginary. */
tb_model *tb_create(const tb_config *config, const float **weights, const float *part_re, const float *part_im,
                    int n_bends, const tb_bend *bends) {
    const tb_config *c = config;
    int block = c->block_frames * c->hop;
    if (c->block_frames < 1 || c->block_frames > MAX_FRAMES || !is_power_of_two(block) || c->n_inputs < 1
        || c->n_inputs > 2 || c->n_bands < 2)
        return NULL;
    arena_t arena = {0};
    tb_model *m = arena_alloc(&arena, sizeof(tb_model));
    if (!m) return NULL;
    m->arena = arena;
    arena_t *a = &m->arena;
    m->c = *c;
    m->block = block;
    m->n_out = 1 + c->n_harmonics + c->n_bands;
    m->ir_size = 2 * (c->n_bands - 1);
    int fft_size = 1;
    while (fft_size < c->hop + m->ir_size - 1) fft_size <<= 1;
    m->noise_tail = fft_size - c->hop;
    m->noise_delay = c->hop - ((m->ir_size - 1) / 2 - 1);
    if (m->noise_delay < 0 || m->noise_delay > block || c->ch < 1 || c->rnn < 1 || c->layers < 1 || c->n_harmonics < 1) {
        tb_destroy(m);  /* more noise bands than one hop can align, or an empty layer */
        return NULL;
    }
    m->c.bfloat16 = c->bfloat16 && HAVE_BF16;
    m->c.int8 = c->int8 && HAVE_INT8 && int8_usable() && c->rnn % 4 == 0;
    int ok = 1, w = 0, ch = c->ch, u = c->rnn, skip = c->n_inputs * ch + u, bf = m->c.bfloat16;
    for (int s = 0; s < c->n_inputs; s++) {
        m->stacks[s] = arena_alloc(a, sizeof(fc_t) * c->layers);
        ok &= m->stacks[s] != NULL;
        for (int l = 0; ok && l < c->layers; l++, w += 4)
            ok &= !fc_init(a, &m->stacks[s][l], weights + w, l ? ch : 1, ch, bf);
    }
    ok = ok && !dense_init(a, &m->gru_in, weights[w], weights[w + 2], c->n_inputs * ch, 3 * u, bf);
    ok = ok && !(m->c.int8 ? dense_int8_init(a, &m->gru_rec, weights[w + 1], weights[w + 2] + 3 * u, u, 3 * u)
                           : dense_init(a, &m->gru_rec, weights[w + 1], weights[w + 2] + 3 * u, u, 3 * u, bf));
    w += 3;
    m->out_stack = arena_alloc(a, sizeof(fc_t) * c->layers);
    ok &= m->out_stack != NULL;
    for (int l = 0; ok && l < c->layers; l++, w += 4)
        ok &= !fc_init(a, &m->out_stack[l], weights + w, l ? ch : skip, ch, bf);
    ok = ok && !dense_init(a, &m->dense_out, weights[w], weights[w + 1], ch, m->n_out, bf);
    int F = MAX_FRAMES, widest = skip > 3 * u ? skip : 3 * u;
    if (m->n_out > widest) widest = m->n_out;
    widest += PANEL;
    size_t frame_rows = (size_t)(F + 1) * widest;
    for (int i = 0; i < 2; i++) {
        m->x_in[i] = arena_alloc(a, sizeof(float) * F);
        m->stack_out[i] = arena_alloc(a, sizeof(float) * frame_rows);
        ok &= m->x_in[i] && m->stack_out[i];
    }
    size_t ring = (size_t)(c->reverb_parts ? c->reverb_parts : 1) * (block + 1);
#define ALLOCATE_BUFFER(type, name, count) \
    m->name = arena_alloc(a, sizeof(type) * (size_t)(count)); \
    ok &= m->name != NULL;
    TB_BUFFERS(ALLOCATE_BUFFER)
#undef ALLOCATE_BUFFER
    m->n_bends = n_bends;
    m->bends = arena_alloc(a, sizeof(bend_t) * (n_bends ? n_bends : 1));
    ok &= m->bends != NULL;
    for (int b = 0; ok && b < n_bends; b++) {
        bend_t *bend = &m->bends[b];
        bend->spec = bends[b];
        int units = bends[b].units;
        bend->ranks = arena_alloc(a, sizeof(float) * units);
        bend->permutation = arena_alloc(a, sizeof(int32_t) * units);
        bend->memory = arena_alloc(a, sizeof(float) * units);
        ok &= bend->ranks && bend->permutation && bend->memory;
        if (!ok) break;
        memcpy(bend->ranks, bends[b].ranks, sizeof(float) * units);
        if (bends[b].permutation) memcpy(bend->permutation, bends[b].permutation, sizeof(int32_t) * units);
    }
    if (!ok) {
        tb_destroy(m);
        return NULL;
    }
    if (c->reverb_parts) {
        memcpy(m->part_re, part_re, sizeof(float) * ring);
        memcpy(m->part_im, part_im, sizeof(float) * ring);
    }
    m->plan = (fft_plan){block, m->bit_reverse, m->twiddle_re, m->twiddle_im, m->real_re, m->real_im, m->fft_re,
                         m->fft_im};
    fft_plan_init(&m->plan);
    for (int r = 0; r < c->hop; r++) {
        float position = (float)r / (float)c->hop;
        m->linear_weights[r] = position;
        m->window_weights[r] = c->amp_linear ? position : 0.5f - 0.5f * cosf((float)M_PI * position);
    }
    for (int n = 0; n < m->ir_size; n++) {
        m->noise_window[n] = (float)(0.5 - 0.5 * cos(TWO_PI * n / m->ir_size));
        int source = (n + m->ir_size / 2) % m->ir_size; /* fftshift around the window */
        for (int k = 0; k < c->n_bands; k++) {
            double weight = (k == 0 || k == c->n_bands - 1) ? 1.0 : 2.0;
            m->cos_table[(size_t)k * m->ir_size + n] = (float)(weight * cos(TWO_PI * k * source / m->ir_size)
                                                               / m->ir_size);
        }
    }
    reset_state(m);
    return m;
}

/* ----- a block's control values: the faders' glides and the derived rows --------------------------------------
 * tuibend.bend.rig's numpy_fill, in one call: in Python the same few operations on rows of four frames cost a
 * block some 200 us paced at real time (each numpy call finds its code cold), here a few. Every fader not driven
 * glides from its current value toward its target (doubles, as Python's floats), held once it arrives; each
 * derived row follows its source row in float32, as numpy computes it from a float32 row. */
static void derive_row(int kind, const float *source, int frames, double frame_rate, double *memory, float *row) {
    float rate = (float)frame_rate;
    if (kind == DERIVE_PHASE) {  /* the oscillator's phase, accumulated, carried modulo 2 pi */
        float start = (float)*memory, sum = 0.0f, two_pi = (float)TWO_PI;
        for (int f = 0; f < frames; f++) {
            sum += two_pi * source[f] / rate;
            row[f] = start + sum;
        }
        float phase = fmodf(row[frames - 1], two_pi);
        *memory = phase < 0.0f ? phase + two_pi : phase;
    } else if (kind == DERIVE_REFRESH) {  /* the sample-and-hold's refresh frames: NaN memory, none yet */
        int none = isnan(*memory);
        float position = none ? 0.0f : (float)*memory;
        for (int f = 0; f < frames; f++) {
            float step = source[f] / rate;
            row[f] = 0.0f;
            if (none) {
                row[f] = 1.0f;
                position = 0.0f;
                none = 0;
                continue;
            }
            position += step;
            if (position >= 1.0f) {
                row[f] = 1.0f;
                position -= floorf(position);
            }
        }
        *memory = none ? NAN : position;
    } else {  /* the smoother's coefficient for its time constant */
        for (int f = 0; f < frames; f++) row[f] = 1.0f - expf(-1.0f / ((source[f] > 1e-3f ? source[f] : 1e-3f) * rate));
    }
}

/* values [rows + 1][frames]: the rows lanes and morphs drive already filled; every other fader's row, every derived
 * row and the last (block_number in each frame) filled here; current and memory moved on. */
void tb_control_block(const tb_control *c, double block_number, float *values) {
    int frames = c->frames;
    for (int i = 0; i < c->faders; i++) {
        if (c->driven[i]) continue;
        float *row = values + (size_t)c->fader_rows[i] * frames;
        double start = c->current[i], target = c->targets[i];
        if (fabs(start - target) <= 1e-7 * (1.0 + fabs(target))) {  /* arrived, to float32 precision: held */
            for (int f = 0; f < frames; f++) row[f] = (float)target;
            c->current[i] = target;
            continue;
        }
        double glide = start;
        for (int f = 0; f < frames; f++) {
            glide = target + (start - target) * c->decay_steps[f];
            row[f] = (float)glide;
        }
        c->current[i] = glide;
    }
    for (int d = 0; d < c->derivations; d++)
        derive_row(c->kinds[d], values + (size_t)c->sources[d] * frames, frames, c->frame_rate, &c->memory[d],
                   values + (size_t)c->derived[d] * frames);
    for (int f = 0; f < frames; f++) values[(size_t)c->rows * frames + f] = (float)block_number;
}

/* What this CPU runs, as tuibend/native/variants.py numbers it: 2 AVX512-BF16 (x86-64-v4), 1 AVX2 and
 * FMA (x86-64-v3), 0 the portable build. Asked of the portable build before a faster one is loaded. */
int tb_cpu_level(void) {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
             && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (v4 && __builtin_cpu_supports("avx512bf16")) return 2;
    return v3 ? 1 : 0;
#else
    return 0;
#endif
}

/* ----- what stands before the speaker: the NaN/Inf guard, a DC blocker and a peak limiter, one call a block -----
 * tuibend.safety's numpy twin computes the same (equal within float32 rounding, tested); here it costs no
 * interpreter and no temporary arrays on the model thread. Python owns the state and fills the constants. */
typedef struct {
    double r;               /* the DC blocker's pole: y[n] = x[n] - x[n-1] + r y[n-1] (about 10 Hz) */
    double last_x, last_y;  /* its state */
    double gain;            /* the limiter's gain where the last block ended */
    double ceiling;         /* the limiter's ceiling, never exceeded */
    double release_samples; /* the limiter's recovery time constant */
} tb_safety;

/* out = the limiter of the DC blocker of in * gain, for n samples (in and out may be the same). 1 when in holds
 * NaN or Inf: out is silence and the state untouched (the caller mutes and resets); 0 otherwise. */
int tb_safety_process(tb_safety *s, const float *in, int n, float gain, float *out) {
    uint32_t non_finite = 0;
    for (int i = 0; i < n; i++) { /* an exponent of all ones: NaN or Inf (integer tests: vectorised) */
        uint32_t bits;
        memcpy(&bits, in + i, sizeof(bits));
        non_finite |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    if (non_finite) {
        memset(out, 0, sizeof(float) * (size_t)n);
        return 1;
    }
    double last_x = s->last_x, y = s->last_y, r = s->r;
    float peak = 0.0f;
    for (int i = 0; i < n; i++) {
        double x = (double)(in[i] * gain);
        y = x - last_x + r * y;
        last_x = x;
        out[i] = (float)y;
        float magnitude = fabsf(out[i]);
        peak = magnitude > peak ? magnitude : peak;
    }
    if (n) s->last_x = last_x, s->last_y = y;
    double needed = peak > 0.0f ? fmin(1.0, s->ceiling / peak) : 1.0;
    double recovered = 1.0 - (1.0 - s->gain) * exp(-n / s->release_samples);
    double target = fmin(needed, recovered), knee = 0.9 * s->ceiling;
    if (target == 1.0 && s->gain == 1.0 && peak <= knee) return 0; /* nothing to limit: most blocks */
    double start = s->gain, step = n ? (target - start) / n : 0.0;
    float knee_f = (float)knee, width = (float)(s->ceiling - knee);
    for (int i = 0; i < n; i++) {
        float limited = out[i] * (float)(i + 1 < n ? start + (i + 1) * step : target);
        float magnitude = fabsf(limited);
        if (magnitude > knee_f) /* a tanh knee over the ceiling's last 10 %: continuous, never past it */
            limited = copysignf(knee_f + width * tanhf((magnitude - knee_f) / width), limited);
        out[i] = limited;
    }
    s->gain = target;
    return 0;
}

/* ----- what the model hears in a rest and how loud it answers: the noise gate, the level match, the ceiling -----
 * tuibend.dynamics is the reference (equal within float32 rounding, tested) and documents the behaviour; here a
 * block's gate, level match and ceiling cost the model thread two calls instead of some thirty numpy calls and a
 * loop of frames in the interpreter. Python owns the state and fills the settings (tuibend.native.dynamics). */
#define TB_FLOOR_MINIMA 20  /* the floor's window: two seconds of 100 ms chunks */
#define TB_FLOOR_CHUNK 128  /* the most frames in a 100 ms chunk (a frame rate up to 1280 Hz) */
#define TB_HEARD_FRAMES 512 /* the most frames one hear decides */
typedef struct {
    /* the gate's settings (a threshold_db of NAN: follow the floor) */
    int32_t gate_enabled, hold_frames, chunk_frames, learning_frames;
    double threshold_db, margin_db, hysteresis_db, offset_db, release_db_per_frame, silence_db, rise_per_frame;
    double initial_floor_db, max_floor_db;
    /* the level match's and the ceiling's settings */
    int32_t level_enabled, attack_samples, hop;
    double sample_rate, time_constant_s, limit_db, headroom_db, recovery_db_per_s;
    /* the gate's state (floor_db NAN: not measured yet) */
    int32_t is_open, below, chunk_len, minima_len, minima_next;
    int64_t frames;
    double floor_db, quietest, gain_db, minima[TB_FLOOR_MINIMA], chunk[TB_FLOOR_CHUNK];
    /* the level match's, the ceiling's and the shape's */
    double level_db, heard_s, level_applied, reduction_db, ceiling_applied, last_gain;
    int32_t heard, shaped, last_played;
    float gains[TB_HEARD_FRAMES];          /* the output gain of each frame heard last */
    uint8_t played[TB_HEARD_FRAMES];       /* and whether the player played at it */
} tb_dynamics;

/* Where the gate opens now. */
static double gate_threshold(const tb_dynamics *d) {
    if (!isnan(d->threshold_db)) return d->threshold_db + d->offset_db;
    return (isnan(d->floor_db) ? d->initial_floor_db : d->floor_db) + d->margin_db + d->offset_db;
}

static double median_of(const double *values, int n) { /* sorted(values)[n // 2] */
    double sorted[TB_FLOOR_CHUNK];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && sorted[j - 1] > values[i]; j--) sorted[j] = sorted[j - 1];
        sorted[j] = values[i];
    }
    return sorted[n / 2];
}

/* The floor follows the quietest 100 ms chunk (its median) of the last two seconds: learned in the first
 * seconds (or afresh from digital silence), then falling at once and rising slowly. */
static void track_floor(tb_dynamics *d, double level) {
    d->frames++;
    d->chunk[d->chunk_len++] = level;
    if (d->chunk_len == d->chunk_frames) {
        double median = median_of(d->chunk, d->chunk_len);
        if (d->minima_len < TB_FLOOR_MINIMA) d->minima[d->minima_len++] = median;
        else d->minima[d->minima_next] = median, d->minima_next = (d->minima_next + 1) % TB_FLOOR_MINIMA;
        d->quietest = d->minima[0];
        for (int i = 1; i < d->minima_len; i++) d->quietest = fmin(d->quietest, d->minima[i]);
        d->chunk_len = 0;
    }
    if (!d->minima_len) {
        d->floor_db = d->initial_floor_db;
        return;
    }
    double floor;
    if (d->frames <= d->learning_frames || isnan(d->floor_db) || d->floor_db <= d->silence_db + 1.0)
        floor = fmin(d->quietest, d->initial_floor_db);
    else if (d->quietest < d->floor_db)
        floor = d->quietest;
    else
        floor = fmin(d->quietest, d->floor_db + d->rise_per_frame);
    d->floor_db = fmin(fmax(floor, d->silence_db), d->max_floor_db);
}

/* model_db = what the model hears of n frames of loudness (a closed frame: the model's silence); the gate
 * listens to levels (the player's own loudness; NULL: the loudness) and keeps each frame's output gain, and
 * whether the player played at it, for tb_dynamics_shape. A gate turned off still decides (the level match
 * learns only from what is played) but changes nothing. 1 when n is more than a hear holds (nothing changed),
 * 0 otherwise. */
int tb_dynamics_hear(tb_dynamics *d, const float *loudness, const float *levels, int n, float *model_db) {
    if (n < 0 || n > TB_HEARD_FRAMES) return 1;
    d->heard = n, d->shaped = 0;
    for (int i = 0; i < n; i++) model_db[i] = loudness[i], d->gains[i] = 1.0f;
    for (int i = 0; i < n; i++) {
        double level = levels ? levels[i] : loudness[i];
        if (!isfinite(level)) level = d->silence_db;
        track_floor(d, level);
        double threshold = gate_threshold(d);
        if (level >= threshold)
            d->is_open = 1, d->below = 0;
        else if (d->is_open && level < threshold - d->hysteresis_db && ++d->below > d->hold_frames)
            d->is_open = 0;
        d->played[i] = (uint8_t)d->is_open;
        if (d->is_open) {
            d->gain_db = 0.0;
            continue;
        }
        if (!d->gate_enabled) continue;
        model_db[i] = (float)d->silence_db;
        d->gain_db -= d->release_db_per_frame;
        d->gains[i] = d->gain_db <= -60.0 ? 0.0f : (float)pow(10.0, d->gain_db / 20.0);
    }
    return 0;
}

/* The RMS level in dB, -inf for silence; the sum of squares in float32's range, as numpy's (inf past it: a blown-up
 * block is no level for the ceiling to follow). */
static double rms_db(const float *x, int n) {
    double power = 0.0;
    for (int i = 0; i < n; i++) power += (double)x[i] * x[i];
    float total = (float)power;
    return n && total > 0.0f ? 10.0 * log10((double)total / n) : -INFINITY;
}

/* x times a gain moving linearly from start to end over its first length samples, then holding end. */
static void glide(float *x, int n, double start, double end, int length) {
    if (start == end) {
        if (end != 1.0)
            for (int i = 0; i < n; i++) x[i] *= (float)end;
        return;
    }
    length = length < n ? length : n;
    float from = (float)start, span = (float)(end - start);
    for (int i = 0; i < length; i++) x[i] *= from + span * ((float)(i + 1) / (float)length);
    for (int i = length; i < n; i++) x[i] *= (float)end;
}

/* Per-sample gains gliding from each frame's gain to the next across its hop, from the gain before them. */
static void frame_gains(float *x, int n, const float *gains, int count, double previous, int hop) {
    double from = previous;
    int at = 0;
    for (int f = 0; f < count && at < n; f++, at += hop) {
        glide(x + at, n - at < hop ? n - at : hop, from, gains[f], hop);
        from = gains[f];
    }
    if (at < n) glide(x + at, n - at, from, from, 0); /* past the frames heard: their last gain holds */
}

static void level_match(tb_dynamics *d, float *x, int n, int playing, double dry_db) {
    if (playing) {
        double out_db = d->level_applied > 0.0 ? rms_db(x, n) + 20.0 * log10(d->level_applied) : -INFINITY;
        if (dry_db > -70.0 && out_db > -80.0) { /* quick while it has heard little, then slow */
            d->heard_s += n / d->sample_rate;
            double time_constant = fmin(d->time_constant_s, fmax(0.25, d->heard_s));
            double step = 1.0 - exp(-n / (time_constant * d->sample_rate));
            d->level_db = fmin(fmax(d->level_db + step * (dry_db - out_db), -d->limit_db), d->limit_db);
        }
    }
    double start = d->level_applied;
    d->level_applied = pow(10.0, d->level_db / 20.0);
    glide(x, n, start, d->level_applied, n);
}

static void ceiling(tb_dynamics *d, float *x, int n, int playing, double dry_db) {
    d->reduction_db = fmin(0.0, d->reduction_db + d->recovery_db_per_s * n / d->sample_rate);
    if (playing) {
        double excess = rms_db(x, n) + d->reduction_db - dry_db - d->headroom_db;
        if (isfinite(excess) && excess > 0.0) d->reduction_db -= excess;
    }
    double start = d->ceiling_applied;
    d->ceiling_applied = pow(10.0, d->reduction_db / 20.0); /* down within attack_samples, up across the block */
    glide(x, n, start, d->ceiling_applied, d->ceiling_applied < start ? d->attack_samples : n);
}

/* out = n samples of the model's output shaped by the next n / hop of the frames heard last (their gains, unless
 * drone), the level match and the ceiling (not for a drone); dry: the player's block (dry_n samples). in and out
 * may be the same. */
void tb_dynamics_shape(tb_dynamics *d, const float *in, int n, const float *dry, int dry_n, int drone, float *out) {
    if (out != in) memcpy(out, in, sizeof(float) * (size_t)n);
    int frames = n / d->hop > 1 ? n / d->hop : 1;
    int first = d->shaped < d->heard ? d->shaped : d->heard;
    int count = frames < d->heard - first ? frames : d->heard - first;
    const float *gains = d->gains + first;
    const uint8_t *played = d->played + first;
    d->shaped += frames;
    int playing = count > 0, unity = count > 0 && d->last_gain == 1.0; /* what the level match follows; no fade */
    for (int i = 0; i < count; i++) playing &= played[i], unity &= gains[i] >= 1.0f;
    if (!drone && !unity) frame_gains(out, n, gains, count, d->last_gain, d->hop);
    if (count) {
        if (played[count - 1] && !(playing && d->last_played)) d->reduction_db = 0.0; /* an onset: the ceiling lets go */
        d->last_gain = gains[count - 1], d->last_played = played[count - 1];
    }
    if (!d->level_enabled) return;
    double dry_db = playing ? rms_db(dry, dry_n) : -INFINITY;
    level_match(d, out, n, playing, dry_db);
    if (!drone) ceiling(d, out, n, playing, dry_db);
}

/* The contract Python checks before it calls anything else: version, the sizes of the structs it fills
 * (tb_config, tb_bend, tb_analysis_config, tb_safety, tb_control, tb_live_config, tb_dynamics), the transform
 * count, the first late bend point's number and the derivation count. */
void tb_abi(int32_t out[11]) {
    out[0] = TB_ABI_VERSION;
    out[1] = (int32_t)sizeof(tb_config);
    out[2] = (int32_t)sizeof(tb_bend);
    out[3] = T_COUNT;
    out[4] = POINT_FC1;
    out[5] = (int32_t)sizeof(tb_analysis_config);
    out[6] = (int32_t)sizeof(tb_safety);
    out[7] = (int32_t)sizeof(tb_control);
    out[8] = DERIVE_COUNT;
    out[9] = (int32_t)sizeof(tb_live_config);
    out[10] = (int32_t)sizeof(tb_dynamics);
}

/* 1 when this process multiplies in AMX tiles: the CPU has AMX-BF16, the build bfloat16, and Linux allows it. */
int tb_amx(void) { return amx_enabled(); }

const char *tb_transform_name(int id) { return id >= 0 && id < T_COUNT ? TRANSFORM_NAMES[id] : 0; }

const char *tb_derivation_name(int id) { return id >= 0 && id < DERIVE_COUNT ? DERIVATION_NAMES[id] : 0; }

#ifndef TB_SOURCE_DIGEST
#define TB_SOURCE_DIGEST ""
#endif
/* The digest of the source this library was built from: Python loads no build of another source. */
const char *tb_source_digest(void) { return TB_SOURCE_DIGEST; }

#ifdef TB_INIT_NAME
/* setuptools builds the kernel per platform as an extension module and exports this name; tuibend
 * loads it with ctypes and never imports it, so the function only has to exist. */
void *TB_INIT_NAME(void) { return 0; }
#endif

void tb_destroy(tb_model *m) {
    if (!m) return;
    workers_destroy(m->workers);
    arena_t arena = m->arena;  /* m lives in it */
    arena_free(&arena);
}

void tb_reset(tb_model *m) { reset_state(m); }

/* Shares each block (every layer's panels, the recurrence's frame by frame, the layer norms, the two synths)
 * among `threads` threads, the caller one of them: for renders, whose blocks of 64 frames keep two cores
 * busy. 1 stops the helpers. Returns the threads now sharing (fewer where the system starts fewer). Not while a
 * block steps. */
int tb_threads(tb_model *m, int threads) {
    workers_destroy(m->workers);
    m->workers = workers_create(threads < MAX_PARTS ? threads : MAX_PARTS);
    return workers_parts(m->workers);
}

/* 1 when this model's layers run in bfloat16 (asked for, and the CPU and compiler have it). */
int tb_bfloat16(const tb_model *m) { return m->c.bfloat16; }

/* 1 when this model's GRU recurrence runs in 8 bits (asked for, and the CPU and compiler have AVX512-VNNI). */
int tb_int8(const tb_model *m) { return m->c.int8; }

/* Takes over another model's stream state (same model and block size; else returns -1 and changes
 * nothing): GRU, phases, tails. The bends' memory starts afresh, as a TensorFlow chain's rig is reset. */
int tb_continue_from(tb_model *m, const tb_model *other) {
    const tb_config *a = &m->c, *b = &other->c;
    if (a->rnn != b->rnn || a->n_harmonics != b->n_harmonics || a->n_bands != b->n_bands || a->hop != b->hop
        || a->block_frames != b->block_frames || a->reverb_parts != b->reverb_parts)
        return -1;
    memcpy(m->h, other->h, sizeof(float) * m->c.rnn);
    memcpy(m->prev_amps, other->prev_amps, sizeof(float) * m->c.n_harmonics);
    m->prev_f0 = other->prev_f0;
    m->phase = other->phase;
    m->started = other->started;
    m->block_index = other->block_index;
    memcpy(m->noise_tail_buf, other->noise_tail_buf, sizeof(float) * m->noise_tail);
    memcpy(m->noise_delay_buf, other->noise_delay_buf, sizeof(float) * (m->noise_delay + 1));
    memcpy(m->reverb_previous, other->reverb_previous, sizeof(float) * m->block);
    size_t ring = (size_t)m->c.reverb_parts * (m->block + 1);
    memcpy(m->ring_re, other->ring_re, sizeof(float) * ring);
    memcpy(m->ring_im, other->ring_im, sizeof(float) * ring);
    m->newest = other->newest;
    for (int i = 0; i < m->n_bends; i++)
        if (m->bends[i].memory) memset(m->bends[i].memory, 0, sizeof(float) * m->bends[i].spec.units);
    return 0;
}

static void decoder(tb_model *m, const float *f0, const float *loudness, const float *values, uint64_t counter) {
    const tb_config *c = &m->c;
    int F = c->block_frames, ch = c->ch, u = c->rnn, joined = c->n_inputs * ch;
    for (int s = 0; s < c->n_inputs; s++) {
        for (int f = 0; f < F; f++) {
            if (c->input_is_f0[s]) {
                float hz = f0[f], safe = hz <= 1e-5f ? 1e-5f : hz;
                float note = 12.0f * (logf(safe) / logf(2.0f) - log2f(440.0f)) + 69.0f;
                m->x_in[s][f] = (hz <= 0.0f ? 0.0f : note) / c->f0_range;
            } else {
                m->x_in[s][f] = loudness[f] / c->ld_range + 1.0f;
            }
        }
        const float *x = m->x_in[s];
        float *a = m->tmp, *b = m->stack_out[s];
        for (int l = 0; l < c->layers; l++) {
            float *target = (c->layers - l) % 2 ? b : a;  /* the last layer lands in stack_out */
            fc_apply(m->workers, &m->stacks[s][l], x, F, target);
            x = target;
        }
        apply_bends(m, s, m->stack_out[s], F, ch, ch, values, counter);
        for (int f = 0; f < F; f++) memcpy(m->fc1 + (size_t)f * joined + s * ch, m->stack_out[s] + (size_t)f * ch,
                                           sizeof(float) * ch);
    }
    apply_bends(m, POINT_FC1, m->fc1, F, joined, joined, values, counter);
    dense_shared(m->workers, &m->gru_in, m->fc1, F, m->projected, 3 * u, 0);
    for (int f = 0; f < F; f++) {
        int reverse = (int)((m->block_index * F + f) & 1);
        dense_shared(m->workers, &m->gru_rec, m->h, 1, m->tmp2, 3 * u, reverse);
        gru_gates(m->h, m->tmp2, m->projected + (size_t)f * 3 * u, u);
        memcpy(m->gru_out + (size_t)f * u, m->h, sizeof(float) * u);
    }
    apply_bends(m, POINT_GRU, m->gru_out, F, u, u, values, counter);
    int width = joined + u;
    for (int f = 0; f < F; f++) {
        memcpy(m->skip + (size_t)f * width, m->fc1 + (size_t)f * joined, sizeof(float) * joined);
        memcpy(m->skip + (size_t)f * width + joined, m->gru_out + (size_t)f * u, sizeof(float) * u);
    }
    const float *x = m->skip;
    for (int l = 0; l < c->layers; l++) {
        float *target = (c->layers - l) % 2 ? m->fc2 : m->tmp;
        fc_apply(m->workers, &m->out_stack[l], x, F, target);
        x = target;
    }
    apply_bends(m, POINT_FC2, m->fc2, F, ch, ch, values, counter);
    dense_shared(m->workers, &m->dense_out, m->fc2, F, m->raw, m->n_out, 0);
    apply_bends(m, POINT_AMPS, m->raw, F, 1, m->n_out, values, counter);
    apply_bends(m, POINT_HARMONICS, m->raw + 1, F, c->n_harmonics, m->n_out, values, counter);
    apply_bends(m, POINT_NOISE, m->raw + 1 + c->n_harmonics, F, c->n_bands, m->n_out, values, counter);
}

/* Per-harmonic amplitudes of each frame: overall amplitude times the band-limited distribution. */
static void harmonic_amplitudes(tb_model *m, const float *f0) {
    const tb_config *c = &m->c;
    int nh = c->n_harmonics;
    float nyquist = c->sample_rate / 2.0f;
    for (int f = 0; f < c->block_frames; f++) {
        const float *row = m->raw + (size_t)f * m->n_out;
        float *out = m->amp_frames + (size_t)f * nh, total = 0.0f, amplitude = exp_sigmoid(row[0]);
        for (int k = 0; k < nh; k++) {
            out[k] = f0[f] * (float)(k + 1) >= nyquist ? 0.0f : exp_sigmoid(row[1 + k]);
            total += out[k];
        }
        float divisor = total == 0.0f ? 1e-7f : total;
        for (int k = 0; k < nh; k++) out[k] = amplitude * (out[k] / divisor);
    }
}

/* Harmonic k over one hop: its amplitude crossfaded from left_amp by step, silent above nyquist, its sine
 * advanced by the recurrence sin((n + 1) t) = 2 cos t sin(n t) - sin((n - 1) t). Parameters, so that their
 * restrict holds (GCC ignores it on local pointers: the loop ran as scalar code behind an overlap check). */
static void harmonic_hop(float *restrict harmonic, double *restrict sin_cur, double *restrict sin_prev,
                         const double *restrict cos2, const float *restrict f0_env, const float *restrict weights,
                         float left_amp, float step, float ratio, float nyquist, int hop) {
    for (int i = 0; i < hop; i++) {
        float amp = f0_env[i] * ratio >= nyquist ? 0.0f : left_amp + step * weights[i];
        double s = sin_cur[i];
        harmonic[i] += amp * (float)s;
        sin_cur[i] = cos2[i] * s - sin_prev[i];
        sin_prev[i] = s;
    }
}

/* The oscillator bank over the block: frame m-1 to m crossfades, sin(k theta) by recurrence in double. */
static void harmonic_block(tb_model *m, const float *f0) {
    const tb_config *c = &m->c;
    int F = c->block_frames, hop = c->hop, nh = c->n_harmonics;
    float nyquist = c->sample_rate / 2.0f;
    double omega_scale = TWO_PI / c->sample_rate;
    float left_f0 = m->started ? m->prev_f0 : f0[0];
    double start = m->started ? m->phase : -(double)f0[0] * omega_scale * hop, cumulative = 0.0, phase = 0.0;
    for (int frame = 0; frame < F; frame++) {
        float right = f0[frame], left = frame ? f0[frame - 1] : left_f0;
        for (int r = 0; r < hop; r++) {
            int i = frame * hop + r;
            float hz = left + (right - left) * m->linear_weights[r];
            m->f0_env[i] = hz;
            cumulative += (double)hz * omega_scale;
            phase = start + cumulative;
            phase -= floor(phase / TWO_PI) * TWO_PI;
            double s, co;
            sincos(phase, &s, &co);
            m->sin_prev[i] = 0.0;
            m->sin_cur[i] = s;
            m->cos2[i] = 2.0 * co;
            m->harmonic[i] = 0.0f;
        }
    }
    /* Above nyquist / (the block's lowest f0) every sample of a harmonic is masked: those are skipped. */
    float lowest = nyquist;
    for (int i = 0; i < F * hop; i++) lowest = m->f0_env[i] < lowest ? m->f0_env[i] : lowest;
    int audible = lowest > 0.0f && nyquist / lowest < (float)nh ? (int)(nyquist / lowest) + 1 : nh;
    for (int k = 1; k <= audible; k++)
        for (int frame = 0; frame < F; frame++) {
            const float *right_row = m->amp_frames + (size_t)frame * nh;
            float left_amp = frame ? m->amp_frames[(size_t)(frame - 1) * nh + k - 1]
                                   : (m->started ? m->prev_amps[k - 1] : right_row[k - 1]);
            size_t at = (size_t)frame * hop;
            harmonic_hop(m->harmonic + at, m->sin_cur + at, m->sin_prev + at, m->cos2 + at, m->f0_env + at,
                         m->window_weights, left_amp, right_row[k - 1] - left_amp, (float)k, nyquist, hop);
        }
    if (!m->started) memset(m->harmonic, 0, sizeof(float) * hop);
    m->phase = phase;
    m->prev_f0 = f0[F - 1];
    memcpy(m->prev_amps, m->amp_frames + (size_t)(F - 1) * nh, sizeof(float) * nh);
}

/* Each frame's noise convolved with its linear-phase response, overlap-added into the carried tail. */
static void noise_block(tb_model *m, const float *noise) {
    const tb_config *c = &m->c;
    int F = c->block_frames, hop = c->hop, nb = c->n_bands, size = m->ir_size, n = m->block;
    for (int f = 0; f < F; f++) {
        const float *row = m->raw + (size_t)f * m->n_out + 1 + c->n_harmonics;
        float *restrict ir = m->noise_ir + (size_t)f * size;
        for (int j = 0; j < size; j++) ir[j] = 0.0f;
        for (int k = 0; k < nb; k++) {
            float magnitude = exp_sigmoid(row[k] + c->noise_bias);
            const float *basis = m->cos_table + (size_t)k * size;
            for (int j = 0; j < size; j++) ir[j] += magnitude * basis[j];
        }
        for (int j = 0; j < size; j++) ir[j] *= m->noise_window[j];
    }
    float *buf = m->noise_buf;
    memcpy(buf, m->noise_tail_buf, sizeof(float) * m->noise_tail);
    memset(buf + m->noise_tail, 0, sizeof(float) * n);
    for (int f = 0; f < F; f++) {
        const float *restrict ir = m->noise_ir + (size_t)f * size, *restrict x = noise + (size_t)f * hop;
        float *restrict out = buf + (size_t)f * hop;
        for (int i = 0; i < hop; i++) {  /* a sample at a time: the inner loop runs over contiguous taps */
            float sample = x[i];
            float *restrict into = out + i;
            for (int j = 0; j < size; j++) into[j] += sample * ir[j];
        }
    }
    int d = m->noise_delay;
    float *filtered = m->filtered_noise;
    memcpy(filtered, m->noise_delay_buf, sizeof(float) * d);
    memcpy(filtered + d, buf, sizeof(float) * (n - d));
    memcpy(m->noise_delay_buf, buf + n - d, sizeof(float) * d);
    memcpy(m->noise_tail_buf, buf + n, sizeof(float) * m->noise_tail);
    if (m->block_index == 0) memset(filtered, 0, sizeof(float) * hop);
}

/* Dry plus the response, by uniformly partitioned overlap-save over a ring of input spectra. */
static void reverb_block(tb_model *m, float *audio) {
    int n = m->block, bins = n + 1, parts = m->c.reverb_parts;
    float *frame = m->reverb_frame;
    memcpy(frame, m->reverb_previous, sizeof(float) * n);
    memcpy(frame + n, audio, sizeof(float) * n);
    memcpy(m->reverb_previous, audio, sizeof(float) * n);
    m->newest = (m->newest + 1) % parts;
    real_fft(&m->plan, frame, m->ring_re + (size_t)m->newest * bins, m->ring_im + (size_t)m->newest * bins);
    memset(m->acc_re, 0, sizeof(float) * bins);
    memset(m->acc_im, 0, sizeof(float) * bins);
    for (int age = 0; age < parts; age++) {
        int slot = (m->newest - age + parts) % parts;
        const float *xr = m->ring_re + (size_t)slot * bins, *xi = m->ring_im + (size_t)slot * bins;
        const float *pr = m->part_re + (size_t)age * bins, *pi = m->part_im + (size_t)age * bins;
        float *ar = m->acc_re, *ai = m->acc_im;
        for (int k = 0; k < bins; k++) {
            ar[k] += xr[k] * pr[k] - xi[k] * pi[k];
            ai[k] += xr[k] * pi[k] + xi[k] * pr[k];
        }
    }
    real_ifft(&m->plan, m->acc_re, m->acc_im, frame);
    for (int i = 0; i < n; i++) audio[i] += frame[n + i];
}

/* The two synths of a block, independent until they are summed: the oscillator bank in the first share, the
 * filtered noise (the stream's own white noise where none is given) in the last. */
typedef struct { tb_model *m; const float *f0, *noise; } synth_job_t;

static void synth_part(const void *job, int part, int parts) {
    const synth_job_t *j = job;
    tb_model *m = j->m;
    if (part == 0) {
        harmonic_amplitudes(m, j->f0);
        harmonic_block(m, j->f0);
    }
    if (part == parts - 1) {
        const float *noise = j->noise;
        if (!noise) {
            /* a function of the seed and the sample's place in the stream, whatever the block size */
            uint64_t key = mix64(m->c.seed + 0x632be59bd9b4e019ULL), first = m->block_index * (uint64_t)m->block;
            for (int i = 0; i < m->block; i++) m->own_noise[i] = 2.0f * uniform01(key, first + i) - 1.0f;
            noise = m->own_noise;
        }
        noise_block(m, noise);
    }
}

/* One block: f0 and loudness of block_frames frames -> block_frames * hop samples in out.
 * values: the bend rows [rows][frames] with the block counter in the last row; noise: the white
 * noise to filter (NULL: the stream's own, seeded by block). */
void tb_step(tb_model *m, const float *f0, const float *loudness, const float *values, int value_rows,
             const float *noise, float *out) {
#if defined(FLUSH_DENORMALS)
    unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | FLUSH_DENORMALS);
#endif
    const tb_config *c = &m->c;
    int n = m->block;
    uint64_t counter = value_rows > 0 ? (uint64_t)values[(size_t)(value_rows - 1) * c->block_frames] : 0;
    decoder(m, f0, loudness, values, counter);
    synth_job_t synths = {m, f0, noise};
    run_parts(m->workers, synth_part, &synths);
    /* the gain before the reverb: it is linear, so the wet and dry paths both come out at the model's level */
    for (int i = 0; i < n; i++) out[i] = c->output_gain * (m->harmonic[i] + m->filtered_noise[i]);
    if (c->reverb_parts) reverb_block(m, out);
    m->started = 1;
    m->block_index++;
#if defined(FLUSH_DENORMALS)
    _mm_setcsr(saved_csr);
#endif
}

/* ---- CREPE (Kim et al. 2018, "CREPE: A Convolutional Representation for Pitch Estimation") ----
 * A live block's pitch analysis in the same library: six convolutions (ReLU, batch normalisation,
 * max-pool 2) and the classifier over 360 bins, for normalised 1024-sample frames. A convolution is a
 * matrix product whose rows overlap: with the input laid out [position][channel] and zero-padded in time,
 * output position t reads the contiguous window input + t * stride * channels, so no window is copied.
 * Weights are [width * channels][out] (float32, or bfloat16 pairs of consecutive rows, as dense_t). */
#define CREPE_FRAME 1024
#define CREPE_BINS 360
#define CREPE_LAYERS 6
#define CREPE_BN_EPSILON 0.0010000000474974513f
static const int CREPE_FILTERS[CREPE_LAYERS] = {32, 4, 4, 4, 8, 16};
static const int CREPE_WIDTHS[CREPE_LAYERS] = {512, 64, 64, 64, 64, 64};

/* The float32 convolution's vectors: the CPU's own width, and how many sums a tile keeps in registers. */
#if defined(__AVX512F__)
#define CONV_WIDTH 16
#define CONV_SUMS 16
#elif defined(__AVX__)
#define CONV_WIDTH 8
#define CONV_SUMS 8
#else
#define CONV_WIDTH 4
#define CONV_SUMS 8
#endif
typedef float vconv __attribute__((vector_size(4 * CONV_WIDTH)));
static inline vconv load_vconv(const float *p) {
    vconv v;
    memcpy(&v, p, sizeof(v));
    return v;
}

typedef struct {
    int width, stride, in, out, positions, pad_before; /* positions: outputs before pooling */
    float *kernel;     /* [width * in][out] float32 */
    uint32_t *pairs;   /* [width * in / 2][out] bfloat16 pairs */
    int8_t *quads;     /* [width * in / 4][out][4] 8-bit, each column scaled to its largest magnitude */
    float *quad_scale; /* [out] the 8-bit columns' steps */
    int32_t *quad_sums; /* [width * in / 4 + 1][out] the 8-bit columns' sums over the quads before each (the
                         * share of the input's zero point in the quads a tile reads) */
    float *bias, *scale, *shift; /* batch normalisation after the ReLU as one affine per channel */
} crepe_layer_t;

/* The convolutions that may run in 8 bits: the first two hold nine tenths of a tiny frame's multiply-adds, the
 * last the most weights for its multiply-adds; the middle three in 8 bits moved the activations most (measured). */
static const int CREPE_IN_BYTES[CREPE_LAYERS] = {1, 1, 0, 0, 0, 1};

typedef struct {
    int bf16;                       /* 1: the convolutions in bfloat16 (float32 sums), 0: float32 vectors */
    int amx;                        /* 1: those bfloat16 convolutions in AMX tiles, 0: in vectors */
    int int8;                       /* 1: CREPE_IN_BYTES' layers and the classifier in 8 bits (AVX512-VNNI) */
    crepe_layer_t layers[CREPE_LAYERS];
    dense_t classifier;
    float *input[CREPE_LAYERS];     /* each layer's zero-padded input [padded positions][in] */
    uint32_t *input_pairs;          /* the same in bfloat16 pairs (the widest layer's size) */
    uint8_t *input_bytes;           /* the same in 8 bits, offset by its zero point (the widest 8-bit layer's) */
    float *conv_out, *features;     /* a layer's output before pooling; the classifier's input */
    float frame[CREPE_FRAME], activation[CREPE_BINS]; /* one normalised frame and its activations */
    size_t input_size[CREPE_LAYERS];
    arena_t arena;                  /* every buffer here, this struct too */
} tb_crepe;

/* The taps [*first, *last) of output positions t .. t + rows - 1 that reach the layer's input and not only its
 * zero padding (an eighth of a layer's taps near each edge: skipped, the sums unchanged to the bit). */
static inline void reaching_taps(const crepe_layer_t *l, int t, int rows, int *first, int *last) {
    int begin = l->pad_before - (t + rows - 1) * l->stride;
    int end = l->pad_before + l->positions * l->stride - t * l->stride;
    *first = begin > 0 ? begin : 0;
    *last = end < l->width ? end : l->width;
}

/* The vectors of `width` channels a convolution's tile keeps side by side: four where the channels come in fours of
 * them, else two or one (a tile holds up to CONV_SUMS vector sums, so CONV_SUMS / vectors positions; the tiles
 * keep at most four). */
static int tile_vectors(const crepe_layer_t *l, int width) {
    return l->out % (4 * width) == 0 ? 4 : l->out % (2 * width) == 0 ? 2 : 1;
}

/* Sums (without the bias) for `rows` output positions from t and `vecs` vectors of channels from
 * column, in float32. */
static inline __attribute__((always_inline)) void conv_tile(const crepe_layer_t *l, const float *x, int t,
                                                                const int rows, const int vecs, int column,
                                                                float *y) {
    int first, last;
    reaching_taps(l, t, rows, &first, &last);
    size_t step = (size_t)l->stride * l->in;
    vconv acc[CONV_SUMS][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++) acc[r][v] = (vconv){0};
    const float *w = l->kernel + column + (size_t)first * l->in * l->out, *row = x + (size_t)t * step;
    for (int k = first * l->in; k < last * l->in; k++, w += l->out) {
        vconv w0 = load_vconv(w), w1 = vecs > 1 ? load_vconv(w + CONV_WIDTH) : w0;
        vconv w2 = vecs > 2 ? load_vconv(w + 2 * CONV_WIDTH) : w0, w3 = vecs > 3 ? load_vconv(w + 3 * CONV_WIDTH) : w0;
        for (int r = 0; r < rows; r++) {
            float xv = row[r * step + k];
            acc[r][0] += xv * w0;
            if (vecs > 1) acc[r][1] += xv * w1;
            if (vecs > 2) acc[r][2] += xv * w2;
            if (vecs > 3) acc[r][3] += xv * w3;
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++)
            memcpy(y + (size_t)(t + r) * l->out + column + CONV_WIDTH * v, &acc[r][v], sizeof(vconv));
}

#if HAVE_BF16
/* The same sums from bfloat16 pairs (input and kernel, float32 sums): each dot product multiplies two of the
 * window's values at once, so a frame takes about half the vector work (on CPUs whose dot products run at the
 * rate of their multiply-adds: AMD's Zen 4, measured). */
static inline __attribute__((always_inline)) void conv_tile_pairs(const crepe_layer_t *l, const uint32_t *x, int t,
                                                                      const int rows, const int vecs, int column,
                                                                      float *y) {
    int first, last;
    reaching_taps(l, t, rows, &first, &last);
    int first_pair = first * l->in / 2, end_pair = (last * l->in + 1) / 2; /* a pair half in the padding: kept */
    size_t step = (size_t)l->stride * l->in / 2;
    __m512 acc[CONV_SUMS][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++) acc[r][v] = _mm512_setzero_ps();
    const uint32_t *w = l->pairs + column + (size_t)first_pair * l->out, *row = x + (size_t)t * step;
    for (int q = first_pair; q < end_pair; q++, w += l->out) {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(w);
        __m512bh w1 = vecs > 1 ? (__m512bh)_mm512_loadu_si512(w + 16) : w0;
        __m512bh w2 = vecs > 2 ? (__m512bh)_mm512_loadu_si512(w + 32) : w0;
        __m512bh w3 = vecs > 3 ? (__m512bh)_mm512_loadu_si512(w + 48) : w0;
        for (int r = 0; r < rows; r++) {
            __m512bh xb = (__m512bh)_mm512_set1_epi32((int)row[r * step + q]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], xb, w0);
            if (vecs > 1) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], xb, w1);
            if (vecs > 2) acc[r][2] = _mm512_dpbf16_ps(acc[r][2], xb, w2);
            if (vecs > 3) acc[r][3] = _mm512_dpbf16_ps(acc[r][3], xb, w3);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++) _mm512_storeu_ps(y + (size_t)(t + r) * l->out + column + 16 * v, acc[r][v]);
}
#define CONV_TILE(rows, vecs) \
    (x_pairs ? conv_tile_pairs(l, x_pairs, t, rows, vecs, column, y) : conv_tile(l, x, t, rows, vecs, column, y))
#else
#define CONV_TILE(rows, vecs) conv_tile(l, x, t, rows, vecs, column, y)
#endif

#if HAVE_AMX
#define AMX_WINDOWS(index, tile, sum)                                                              \
    if (count > index) {                                                                           \
        _tile_loadd(tile, a + (size_t)index * rows * step, stride);                                \
        _tile_dpbf16ps(sum, tile, 4);                                                              \
    }
#define AMX_STORE(index)                                                                           \
    if (count > index) _tile_stored(index, out + (size_t)index * rows * l->out, l->out * 4);

/* The convolution without its bias in AMX tiles: x is the padded input in bfloat16 pairs. */
AMX_TARGET static void conv_apply_amx(const crepe_layer_t *l, const uint32_t *x, float *y) {
    int rows = l->positions < 16 ? l->positions : 16, pair_count = l->width * l->in / 2;
    size_t step = (size_t)l->stride * l->in / 2, stride = step * 4;
    amx_configure(rows, 1u << 4);
    for (int n0 = 0; n0 < l->out; n0 += 16)
        for (int m0 = 0; m0 < l->positions; m0 += 4 * rows) {
            int count = (l->positions - m0) / rows;
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            for (int q = 0; q < pair_count; q += 16) {
                _tile_loadd(4, l->pairs + (size_t)q * l->out + n0, l->out * 4);
                const uint32_t *a = x + (size_t)m0 * step + q;
                AMX_WINDOWS(0, 5, 0) AMX_WINDOWS(1, 6, 1) AMX_WINDOWS(2, 7, 2) AMX_WINDOWS(3, 5, 3)
            }
            float *out = y + (size_t)m0 * l->out + n0;
            AMX_STORE(0) AMX_STORE(1) AMX_STORE(2) AMX_STORE(3)
        }
    _tile_release();
}
#else
static void conv_apply_amx(const crepe_layer_t *l, const uint32_t *x, float *y) { (void)l; (void)x; (void)y; }
#endif

/* One convolution over all its positions, without its bias: y [positions][out] = windows of x times the
 * kernel, from x in float32, or from x_pairs (the same input in bfloat16 pairs) where that is not NULL. Tiles
 * of as many positions as CONV_SUMS registers hold beside 1, 2 or 4 vectors of channels. */
static void conv_apply(const crepe_layer_t *l, const float *x, const uint32_t *x_pairs, float *y) {
    (void)x_pairs; /* only read where the build has bfloat16 dot products */
    int vecs = tile_vectors(l, CONV_WIDTH);
    for (int column = 0; column < l->out; column += CONV_WIDTH * vecs) {
        int t = 0;
#define CONV_ROWS(v) (CONV_SUMS / (v) > 1 ? CONV_SUMS / (v) : 1)
        if (vecs == 4)
            for (; t + CONV_ROWS(4) <= l->positions; t += CONV_ROWS(4)) CONV_TILE(CONV_ROWS(4), 4);
        else if (vecs == 2)
            for (; t + CONV_ROWS(2) <= l->positions; t += CONV_ROWS(2)) CONV_TILE(CONV_ROWS(2), 2);
        else
            for (; t + CONV_ROWS(1) <= l->positions; t += CONV_ROWS(1)) CONV_TILE(CONV_ROWS(1), 1);
#undef CONV_ROWS
        for (; t < l->positions; t++) {
            if (vecs == 4) CONV_TILE(1, 4);
            else if (vecs == 2) CONV_TILE(1, 2);
            else CONV_TILE(1, 1);
        }
    }
}
#undef CONV_TILE

#if HAVE_INT8
/* The convolution's sums for `rows` output positions from t and `vecs` vectors of channels from column, from the
 * input in 8 bits (x: unsigned bytes, `zero` the byte of 0.0, `step` what one byte step is worth): the quads of
 * the taps that reach the input (a quad half in the zero padding reads `zero` bytes there), what their `zero`
 * bytes add taken off by the columns' sums over the same quads. */
VNNI_TARGET static inline __attribute__((always_inline)) void conv_tile_quads(const crepe_layer_t *l,
                                                                              const uint8_t *x, int t, const int rows,
                                                                              const int vecs, int column, int32_t zero,
                                                                              float step, float *y) {
    int first, last;
    reaching_taps(l, t, rows, &first, &last);
    int first_quad = first * l->in / 4, end_quad = (last * l->in + 3) / 4;
    size_t stride = (size_t)l->stride * l->in;
    __m512i acc[CONV_SUMS][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++) acc[r][v] = _mm512_setzero_si512();
    const int8_t *w = l->quads + ((size_t)first_quad * l->out + column) * 4;
    const uint8_t *row = x + (size_t)t * stride;
    for (int q = first_quad; q < end_quad; q++, w += (size_t)l->out * 4) {
        __m512i w0 = _mm512_loadu_si512(w), w1 = vecs > 1 ? _mm512_loadu_si512(w + 64) : w0;
        __m512i w2 = vecs > 2 ? _mm512_loadu_si512(w + 128) : w0, w3 = vecs > 3 ? _mm512_loadu_si512(w + 192) : w0;
        for (int r = 0; r < rows; r++) {
            int32_t quad;
            memcpy(&quad, row + r * stride + 4 * (size_t)q, 4);
            __m512i xb = _mm512_set1_epi32(quad);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xb, w0);
            if (vecs > 1) acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xb, w1);
            if (vecs > 2) acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], xb, w2);
            if (vecs > 3) acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], xb, w3);
        }
    }
    __m512i zeros = _mm512_set1_epi32(zero);
    for (int v = 0; v < vecs; v++) {
        int at = column + 16 * v;
        __m512i sums = _mm512_sub_epi32(_mm512_loadu_si512(l->quad_sums + (size_t)end_quad * l->out + at),
                                        _mm512_loadu_si512(l->quad_sums + (size_t)first_quad * l->out + at));
        __m512i offset = _mm512_mullo_epi32(zeros, sums);
        __m512 scale = _mm512_mul_ps(_mm512_set1_ps(step), _mm512_loadu_ps(l->quad_scale + at));
        for (int r = 0; r < rows; r++)
            _mm512_storeu_ps(y + (size_t)(t + r) * l->out + at,
                             _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], offset)), scale));
    }
}

/* One convolution over all its positions, without its bias, from its padded input in 8 bits (conv_tile_quads). */
VNNI_TARGET static void conv_apply_quads(const crepe_layer_t *l, const uint8_t *x, int32_t zero, float step,
                                         float *y) {
    int vecs = tile_vectors(l, 16);
    for (int column = 0; column < l->out; column += 16 * vecs) {
        int t = 0;
#define QUAD_TILE(rows, v) conv_tile_quads(l, x, t, rows, v, column, zero, step, y)
        if (vecs == 4)
            for (; t + CONV_SUMS / 4 <= l->positions; t += CONV_SUMS / 4) QUAD_TILE(CONV_SUMS / 4, 4);
        else if (vecs == 2)
            for (; t + CONV_SUMS / 2 <= l->positions; t += CONV_SUMS / 2) QUAD_TILE(CONV_SUMS / 2, 2);
        else
            for (; t + CONV_SUMS <= l->positions; t += CONV_SUMS) QUAD_TILE(CONV_SUMS, 1);
        for (; t < l->positions; t++) {
            if (vecs == 4) QUAD_TILE(1, 4);
            else if (vecs == 2) QUAD_TILE(1, 2);
            else QUAD_TILE(1, 1);
        }
#undef QUAD_TILE
    }
}
#else
static void conv_apply_quads(const crepe_layer_t *l, const uint8_t *x, int32_t zero, float step, float *y) {
    (void)l; (void)x; (void)zero; (void)step; (void)y;
}
#endif

/* A layer's padded input [count] in 8 bits for conv_apply_quads: its range (0 included: the padding) in 255 steps,
 * each value the byte nearest; returns the byte of 0.0 and sets *step. */
static int32_t to_bytes(const float *x, size_t count, uint8_t *bytes, float *step) {
    float low = 0.0f, high = 0.0f;
    size_t i = 0;
#if HAVE_INT8
    __m512 lows = _mm512_setzero_ps(), highs = _mm512_setzero_ps();
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        lows = _mm512_min_ps(lows, v);
        highs = _mm512_max_ps(highs, v);
    }
    low = _mm512_reduce_min_ps(lows);
    high = _mm512_reduce_max_ps(highs);
#endif
    for (; i < count; i++) {
        low = x[i] < low ? x[i] : low;
        high = x[i] > high ? x[i] : high;
    }
    float width = high - low;
    *step = width > 0.0f ? width / 255.0f : 1.0f;
    float inverse = 1.0f / *step;
    int32_t zero = (int32_t)lrintf(-low * inverse);
    i = 0;
#if HAVE_INT8
    __m512 scale = _mm512_set1_ps(inverse);
    __m512i offset = _mm512_set1_epi32(zero), none = _mm512_setzero_si512(), most = _mm512_set1_epi32(255);
    for (; i + 16 <= count; i += 16) { /* rounded to nearest even, as lrintf */
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), scale)), offset);
        _mm_storeu_si128((__m128i *)(bytes + i),
                         _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, none), most)));
    }
#endif
    for (; i < count; i++) {
        int32_t q = (int32_t)lrintf(x[i] * inverse) + zero;
        bytes[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    }
    return zero;
}

/* AVX512-BF16 dot products at twice float32's multiply-add rate: AMD's (Zen 4 and later; a CREPE tiny frame
 * 0.33 against 0.61 ms in float32, measured). Intel's run them at float32's rate, and with the conversion a frame
 * took longer than in float32 (0.71 against 0.54 ms), so there bfloat16 convolutions run in AMX tiles or not. */
static int fast_bf16_vectors(void) {
#if HAVE_BF16 && defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}


/* A layer's kernel [rows][out] in 8 bits: each column scaled to its largest magnitude (127 steps each side), four
 * consecutive rows side by side as AVX512-VNNI's dot products read them; and the columns' running sums. */
static void quads_init(crepe_layer_t *l, const float *kernel, size_t rows) {
    for (int o = 0; o < l->out; o++) {
        float peak = 0.0f;
        for (size_t k = 0; k < rows; k++) peak = fmaxf(peak, fabsf(kernel[k * l->out + o]));
        l->quad_scale[o] = peak > 0.0f ? peak / 127.0f : 1.0f;
        int32_t sum = 0;
        for (size_t k = 0; k < rows; k++) {
            if (k % 4 == 0) l->quad_sums[k / 4 * l->out + o] = sum;
            int q = (int)lrintf(kernel[k * l->out + o] / l->quad_scale[o]);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            l->quads[((k / 4) * l->out + o) * 4 + k % 4] = (int8_t)q;
            sum += q;
        }
        l->quad_sums[rows / 4 * l->out + o] = sum;
    }
}

void tb_crepe_destroy(tb_crepe *c) {
    if (!c) return;
    arena_t arena = c->arena;
    arena_free(&arena);
}

/* A CREPE network of capacity `multiplier` (4 tiny ... 32 full). weights: per layer its kernel
 * [width][in][out], bias, gamma, beta, moving mean and variance, then the classifier's kernel [4 * last
 * channels][360] and bias. precision: 0 float32 vectors; 1 bfloat16 pairs with float32 sums where the build has
 * AVX512-BF16, in vectors; 2 bfloat16 where it is the faster: in AMX tiles where the CPU has them, in vectors
 * where they run at twice float32's rate, float32 vectors elsewhere; 3 as 2, and where that runs bfloat16 vectors
 * on a CPU with AVX512-VNNI, CREPE_IN_BYTES' layers and the classifier in 8 bits (twice bfloat16's multiply-add
 * rate, half its bytes). A build
 * without AVX512-BF16 runs float32 vectors. NULL if memory runs out or the multiplier makes no channels of 16. */
tb_crepe *tb_crepe_create(const float *const *weights, int multiplier, int precision) {
    if (multiplier < 4 || multiplier % 4) return 0;
    arena_t arena = {0};
    tb_crepe *c = arena_alloc(&arena, sizeof(tb_crepe));
    if (!c) return 0;
    c->arena = arena;
    arena_t *a = &c->arena;
    c->bf16 = HAVE_BF16 && (precision == 1 || (precision >= 2 && (amx_enabled() || fast_bf16_vectors())));
    c->amx = c->bf16 && precision >= 2 && amx_enabled();
    c->int8 = HAVE_INT8 && c->bf16 && !c->amx && precision == 3 && int8_usable();
    size_t widest_bytes = 0;
    int in = 1, positions = CREPE_FRAME, widest = 0, widest_out = 0;
    for (int i = 0; i < CREPE_LAYERS; i++, weights += 6) {
        crepe_layer_t *l = &c->layers[i];
        l->width = CREPE_WIDTHS[i];
        l->stride = i == 0 ? 4 : 1;
        l->in = in;
        l->out = CREPE_FILTERS[i] * multiplier;
        l->positions = positions / l->stride;
        /* 'SAME' padding: the total a stride needs, the smaller half before */
        int total = (l->positions - 1) * l->stride + l->width - positions;
        l->pad_before = total / 2;
        size_t rows = (size_t)l->width * in;
        c->input_size[i] = (size_t)(positions + total) * in;
        c->input[i] = arena_alloc(a, sizeof(float) * (c->input_size[i] + 1));
        l->bias = arena_alloc(a, sizeof(float) * l->out);
        l->scale = arena_alloc(a, sizeof(float) * l->out);
        l->shift = arena_alloc(a, sizeof(float) * l->out);
        int in_bytes = c->int8 && CREPE_IN_BYTES[i];
        if (in_bytes) {
            l->quads = arena_alloc(a, rows * l->out);
            l->quad_scale = arena_alloc(a, sizeof(float) * l->out);
            l->quad_sums = arena_alloc(a, sizeof(int32_t) * (rows / 4 + 1) * l->out);
            if (c->input_size[i] > widest_bytes) widest_bytes = c->input_size[i];
        } else if (c->bf16) l->pairs = arena_alloc(a, sizeof(uint32_t) * rows / 2 * l->out);
        else l->kernel = arena_alloc(a, sizeof(float) * rows * l->out);
        if (!c->input[i] || !l->bias || !l->scale || !l->shift || !(l->pairs || l->kernel || l->quads)
            || (in_bytes && (!l->quad_scale || !l->quad_sums))) {
            tb_crepe_destroy(c);
            return 0;
        }
        const float *kernel = weights[0];
        if (in_bytes) quads_init(l, kernel, rows);
        else if (c->bf16)
            for (size_t q = 0; q < rows / 2; q++)
                for (int o = 0; o < l->out; o++)
                    l->pairs[q * l->out + o] = bf16_bits(kernel[2 * q * l->out + o])
                                               | bf16_bits(kernel[(2 * q + 1) * l->out + o]) << 16;
        else memcpy(l->kernel, kernel, sizeof(float) * rows * l->out);
        memcpy(l->bias, weights[1], sizeof(float) * l->out);
        for (int o = 0; o < l->out; o++) {
            l->scale[o] = weights[2][o] / sqrtf(weights[5][o] + CREPE_BN_EPSILON);
            l->shift[o] = weights[3][o] - weights[4][o] * l->scale[o];
        }
        if (c->input_size[i] > (size_t)widest) widest = (int)c->input_size[i];
        if (l->positions * l->out > widest_out) widest_out = l->positions * l->out;
        in = l->out;
        positions = l->positions / 2;
    }
    c->input_pairs = arena_alloc(a, sizeof(uint32_t) * (widest / 2 + 1));
    c->input_bytes = widest_bytes ? arena_alloc(a, widest_bytes) : 0;
    c->conv_out = arena_alloc(a, sizeof(float) * widest_out);
    c->features = arena_alloc(a, sizeof(float) * positions * in);
    if (!c->input_pairs || !c->conv_out || !c->features || (widest_bytes && !c->input_bytes)
        || (c->int8 ? dense_int8_init(a, &c->classifier, weights[0], weights[1], positions * in, CREPE_BINS)
                    : dense_init(a, &c->classifier, weights[0], weights[1], positions * in, CREPE_BINS, 0))) {
        tb_crepe_destroy(c);
        return 0;
    }
    return c;
}

/* Activations [n][360] (sigmoid) of n normalised frames [n][1024]. */
void tb_crepe_activation(tb_crepe *c, const float *frames, int n, float *out) {
#if defined(FLUSH_DENORMALS)
    unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | FLUSH_DENORMALS);
#endif
    for (int f = 0; f < n; f++) {
        memcpy(c->input[0] + c->layers[0].pad_before, frames + (size_t)f * CREPE_FRAME, sizeof(float) * CREPE_FRAME);
        for (int i = 0; i < CREPE_LAYERS; i++) {
            const crepe_layer_t *l = &c->layers[i];
            if (l->quads) {
                float step;
                int32_t zero = to_bytes(c->input[i], c->input_size[i], c->input_bytes, &step);
                conv_apply_quads(l, c->input_bytes, zero, step, c->conv_out);
            } else {
                if (c->bf16) to_pairs(c->input[i], c->input_size[i], c->input_pairs);
                if (c->amx) conv_apply_amx(l, c->input_pairs, c->conv_out);
                else conv_apply(l, c->input[i], c->bf16 ? c->input_pairs : 0, c->conv_out);
            }
            /* bias, ReLU, batch normalisation, max-pool 2: into the next layer's input (past its padding) */
            float *next = i + 1 < CREPE_LAYERS ? c->input[i + 1] + (size_t)c->layers[i + 1].pad_before * l->out
                                               : c->features;
            for (int t = 0; t < l->positions / 2; t++)
                for (int o = 0; o < l->out; o++) {
                    float a = c->conv_out[(size_t)2 * t * l->out + o], b = c->conv_out[(size_t)(2 * t + 1) * l->out + o];
                    a += l->bias[o];
                    b += l->bias[o];
                    a = (a > 0.0f ? a : 0.0f) * l->scale[o] + l->shift[o];
                    b = (b > 0.0f ? b : 0.0f) * l->scale[o] + l->shift[o];
                    next[(size_t)t * l->out + o] = a > b ? a : b;
                }
        }
        float *activation = out + (size_t)f * CREPE_BINS;
        if (c->classifier.quads) {
            int8_prepare(&c->classifier, c->features, 0, 1);
            int8_panels(&c->classifier, 1, activation, CREPE_BINS, 0, c->classifier.n_panels, 0);
        } else {
            dense_apply(&c->classifier, c->features, 1, activation, CREPE_BINS);
        }
        for (int b = 0; b < CREPE_BINS; b++) activation[b] = sigmoidf(activation[b]);
    }
#if defined(FLUSH_DENORMALS)
    _mm_setcsr(saved_csr);
#endif
}

#define CREPE_CENTS_PER_BIN 20.0
#define CREPE_CENTS_OFFSET 1997.3794084376191 /* cents (re 10 Hz) of bin 0 */

/* f0 (Hz) and confidence of n raw frames [n][1024], as tuibend.pitch.crepe reads them: each frame
 * normalised (zero mean, unit unbiased standard deviation floored at 1e-10, as torchcrepe), then
 * torchcrepe's weighted argmax over the bins [low, high): the mean of the bins within 4 of the peak,
 * weighted by the sigmoid of their activation; the confidence is the peak's activation. */
void tb_crepe_pitch(tb_crepe *c, const float *frames, int n, int low, int high, float *f0, float *confidence) {
    low = low > 0 ? low : 0;
    high = high < CREPE_BINS ? high : CREPE_BINS;
    for (int f = 0; f < n; f++) {
        const float *raw = frames + (size_t)f * CREPE_FRAME;
        double sum = 0.0, squares = 0.0;
        for (int i = 0; i < CREPE_FRAME; i++) sum += raw[i];
        float mean = (float)(sum / CREPE_FRAME);
        for (int i = 0; i < CREPE_FRAME; i++) {
            c->frame[i] = raw[i] - mean;
            squares += (double)c->frame[i] * c->frame[i];
        }
        double deviation = sqrt(squares / (CREPE_FRAME - 1));
        float scale = (float)(1.0 / (deviation > 1e-10 ? deviation : 1e-10));
        for (int i = 0; i < CREPE_FRAME; i++) c->frame[i] *= scale;
        tb_crepe_activation(c, c->frame, 1, c->activation);
        int peak = low;
        for (int b = low; b < high; b++)
            if (c->activation[b] > c->activation[peak]) peak = b;
        double weights = 0.0, cents = 0.0;
        for (int b = peak - 4; b <= peak + 4; b++) {
            if (b < low || b >= high) continue;
            double weight = 1.0 / (1.0 + exp(-(double)c->activation[b]));
            weights += weight;
            cents += weight * (CREPE_CENTS_PER_BIN * b + CREPE_CENTS_OFFSET);
        }
        f0[f] = (float)(10.0 * pow(2.0, cents / weights / 1200.0));
        confidence[f] = c->activation[peak];
    }
}

/* How this network's convolutions run: 0 float32 vectors, 1 bfloat16 vectors, 2 bfloat16 AMX tiles, 3
 * CREPE_IN_BYTES' layers and the classifier in 8 bits, the rest in bfloat16 vectors. */
int tb_crepe_mode(const tb_crepe *c) { return c->int8 ? 3 : c->amx ? 2 : c->bf16; }

/* ----- the live analysis: CREPE's pitch and the loudness, frame by frame, for a block of input -------------- */

#define ANALYSIS_CHUNK 4096    /* the most samples one tb_analysis_process call takes */
#define ANALYSIS_ESTIMATES 256 /* CREPE estimates kept, a ring (a call reads some forty at most) */
#define YIN_MOST_LAGS 1024     /* the longest period a live input's onset pitch looks for, in samples */
#define YIN_SILENCE_POWER 1e-10 /* mean square below which YIN's window is silent (-100 dBFS) */
#define YIN_LANES 8             /* lags whose differences are summed side by side */

/* The analysis' buffers: element type, name, count (capacity: the sample history; half: the FFT's complex points;
 * lags: YIN's, with its energies one longer than its window). */
#define TB_ANALYSIS_BUFFERS(X)                                                                                \
    X(float, buffer, capacity) X(float, window, c->n_fft) X(float, power_weights, half + 1)                   \
    X(float, weighting_db, half + 1) X(float, frame, c->n_fft) X(float, spec_re, half + 1)                   \
    X(float, spec_im, half + 1) X(int, bit_reverse, half) X(float, twiddle_re, half) X(float, twiddle_im, half) \
    X(float, real_re, half + 1) X(float, real_im, half + 1) X(float, fft_re, half) X(float, fft_im, half)      \
    X(float, estimate_f0, ANALYSIS_ESTIMATES) X(float, estimate_cents, ANALYSIS_ESTIMATES)                    \
    X(float, estimate_confidence, ANALYSIS_ESTIMATES) X(double, yin_samples, yin_window + YIN_LANES)                      \
    X(double, yin_energy, yin_window + 1) X(double, yin_normalised, lags + 1)

typedef struct {
    tb_analysis_config c;
    tb_live_config live;
    int is_live;     /* live is set: tb_analysis_live may run */
    tb_crepe *crepe; /* the caller's, outliving this */
    fft_plan plan;
    int margin, length, capacity, yin_window;
    int64_t n_in, emitted, next_estimate, start; /* samples in, frames out, the next estimate, buffer[0]'s index */
    int frames_since_quiet; /* a live input's frames since its loudness was last quiet */
    float last_voiced;      /* the pitch an unvoiced frame holds (NaN: none yet, it keeps the tracker's own) */
    TB_ANALYSIS_BUFFERS(DECLARE_BUFFER)
    arena_t arena;   /* every buffer here, this struct too */
} tb_analysis;

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void tb_analysis_destroy(tb_analysis *a) {
    if (!a) return;
    arena_t arena = a->arena;
    arena_free(&arena);
}

/* Forgets all input: the next sample is sample 0 again, with silence before it and no pitch held but the
 * resting one. */
void tb_analysis_reset(tb_analysis *a) {
    a->n_in = a->emitted = a->next_estimate = 0;
    a->start = -a->margin;
    a->length = a->margin;
    memset(a->buffer, 0, sizeof(float) * a->margin);
    a->frames_since_quiet = 0;
    a->last_voiced = a->is_live && a->live.resting_f0 > 0.0f ? a->live.resting_f0 : NAN;
}

/* window: the loudness' periodic Hann [n_fft]; power_weights and weighting_db: its A-weighting per bin
 * [n_fft / 2 + 1], as power factors (v3) and in dB (v1). live: what a live input adds (tb_analysis_live), or
 * NULL. NULL for a shape it cannot run, or out of memory. */
tb_analysis *tb_analysis_create(const tb_analysis_config *config, const tb_live_config *live, tb_crepe *crepe,
                                const float *window, const float *power_weights, const float *weighting_db) {
    const tb_analysis_config *c = config;
    if (!crepe || c->hop < 1 || c->pitch_hop < 1 || c->n_fft < 4 || !is_power_of_two(c->n_fft) || c->kept < 1
        || c->kept > c->n_fft || c->lead < 0 || c->lead > c->n_fft || c->loudness_lag < 0 || c->pitch_lag < 0)
        return NULL;
    if (live && (live->yin_min_lag < 1 || live->yin_max_lag <= live->yin_min_lag || live->yin_max_lag > YIN_MOST_LAGS
                 || live->yin_integration < 1 || live->yin_integration > YIN_MOST_LAGS || live->pitch_ratio <= 0.0f))
        return NULL;
    arena_t arena = {0};
    tb_analysis *a = arena_alloc(&arena, sizeof(tb_analysis));
    if (!a) return NULL;
    a->arena = arena;
    a->c = *c;
    a->is_live = live != NULL;
    if (live) a->live = *live;
    a->crepe = crepe;
    int lags = live ? live->yin_max_lag : 1;
    int yin_window = a->yin_window = live ? live->yin_integration + live->yin_max_lag : 1;
    a->margin = CREPE_FRAME > c->n_fft ? CREPE_FRAME : c->n_fft;
    if (yin_window > a->margin) a->margin = yin_window;
    /* the history a call reads (the oldest pending estimate's window, the oldest pending loudness window, the
     * onset pitch's window of the first frame it completes) stays within two margins, a pitch hop and the lags'
     * frames behind the newest sample */
    int half = c->n_fft / 2, capacity = ANALYSIS_CHUNK + 2 * a->margin + c->pitch_hop
                                        + c->hop * (c->loudness_lag + c->pitch_lag + 2);
    a->capacity = capacity;
    int ok = 1;
#define ALLOCATE_BUFFER(type, name, count) \
    a->name = arena_alloc(&a->arena, sizeof(type) * (size_t)(count)); \
    ok &= a->name != NULL;
    TB_ANALYSIS_BUFFERS(ALLOCATE_BUFFER)
#undef ALLOCATE_BUFFER
    if (!ok) {
        tb_analysis_destroy(a);
        return NULL;
    }
    memcpy(a->window, window, sizeof(float) * c->n_fft);
    memcpy(a->power_weights, power_weights, sizeof(float) * (half + 1));
    memcpy(a->weighting_db, weighting_db, sizeof(float) * (half + 1));
    a->plan = (fft_plan){half, a->bit_reverse, a->twiddle_re, a->twiddle_im, a->real_re, a->real_im, a->fft_re,
                         a->fft_im};
    fft_plan_init(&a->plan);
    tb_analysis_reset(a);
    return a;
}

static const float *analysis_samples(const tb_analysis *a, int64_t first) { return a->buffer + (first - a->start); }

/* The loudness of frame i, as tuibend.dsp.plain.FrameLoudness measures it, in dB. */
static float frame_loudness(tb_analysis *a, int64_t i) {
    const tb_analysis_config *c = &a->c;
    const float *x = analysis_samples(a, i * c->hop - c->lead);
    for (int s = 0; s < c->kept; s++) a->frame[s] = x[s] * a->window[s]; /* past kept: zeros, never written */
    real_fft(&a->plan, a->frame, a->spec_re, a->spec_im);
    int bins = c->n_fft / 2 + 1;
    double sum = 0.0;
    for (int k = 0; k < bins; k++) {
        double power = (double)a->spec_re[k] * a->spec_re[k] + (double)a->spec_im[k] * a->spec_im[k];
        if (c->v3) {
            sum += power * a->power_weights[k];
        } else {
            double level = 10.0 * log10(power > 1e-40 ? power : 1e-40) + a->weighting_db[k] - c->ref_db;
            sum += level > -c->range_db ? level : -c->range_db;
        }
    }
    double mean = sum / bins;
    float level = c->v3 ? (float)(10.0 * log10(mean > 1e-20 ? mean : 1e-20) - c->ref_db) : (float)mean;
    level = level > -c->range_db ? level : -c->range_db;
    return level > -c->range_db ? level + c->missing_db : level;
}

/* The pitch and confidence at sample `position`, from the estimates around it (numpy's interp in cents, as
 * tuibend.pitch.analysis.interpolate_estimates): between a voiced estimate and an unvoiced one, the voiced
 * one's pitch; past the newest estimate, the newest's. */
static void pitch_at(const tb_analysis *a, int64_t position, float *f0, float *confidence) {
    int64_t k = floor_div(position, a->c.pitch_hop), newest = a->next_estimate - 1;
    int left = (int)((k < newest ? k : newest) % ANALYSIS_ESTIMATES), right = (int)((k + 1) % ANALYSIS_ESTIMATES);
    double offset = (double)(position - k * a->c.pitch_hop), cents = a->estimate_cents[left];
    double sure = a->estimate_confidence[left];
    if (k < newest && offset != 0.0) {
        double hop = a->c.pitch_hop;
        int voiced_left = a->estimate_confidence[left] >= a->c.voiced;
        int voiced_right = a->estimate_confidence[right] >= a->c.voiced;
        if (voiced_left == voiced_right)
            cents += (a->estimate_cents[right] - (double)a->estimate_cents[left]) / hop * offset;
        else if (voiced_right)
            cents = a->estimate_cents[right];
        sure += (a->estimate_confidence[right] - (double)a->estimate_confidence[left]) / hop * offset;
    }
    *f0 = (float)(10.0 * pow(2.0, cents / 1200.0));
    *confidence = (float)sure;
}

/* The analysis of n (<= ANALYSIS_CHUNK) mono samples: the frames they complete, as tb_analysis_process. */
static int analysis_run(tb_analysis *a, const float *samples, int n, float *f0, float *confidence, float *loudness) {
    const tb_analysis_config *c = &a->c;
    /* drop the samples no pending estimate, frame or onset pitch reads */
    int64_t oldest = a->next_estimate * c->pitch_hop - CREPE_FRAME / 2;
    int64_t loudness_start = (a->emitted - c->loudness_lag) * c->hop - c->lead;
    if (loudness_start < oldest) oldest = loudness_start;
    int64_t onset_start = (a->emitted + 1) * c->hop - a->yin_window;
    if (a->is_live && a->live.onset && onset_start < oldest) oldest = onset_start;
    int64_t cut = oldest - a->start;
    if (cut > a->length) cut = a->length;
    if (cut > 0) {
        memmove(a->buffer, a->buffer + cut, sizeof(float) * (size_t)(a->length - cut));
        a->length -= (int)cut;
        a->start += cut;
    }
    memcpy(a->buffer + a->length, samples, sizeof(float) * (size_t)n);
    a->length += n;
    a->n_in += n;
    int64_t ready = floor_div(a->n_in - (CREPE_FRAME - CREPE_FRAME / 2), c->pitch_hop) + 1;
    for (; a->next_estimate < ready; a->next_estimate++) {
        int slot = (int)(a->next_estimate % ANALYSIS_ESTIMATES);
        tb_crepe_pitch(a->crepe, analysis_samples(a, a->next_estimate * c->pitch_hop - CREPE_FRAME / 2), 1,
                       c->low_bin, c->high_bin, &a->estimate_f0[slot], &a->estimate_confidence[slot]);
        a->estimate_cents[slot] = 1200.0f * log2f(fmaxf(a->estimate_f0[slot], 1e-3f) / 10.0f);
    }
    int count = 0;
    for (int64_t total = a->n_in / c->hop; a->emitted < total; a->emitted++, count++) {
        int64_t frame = a->emitted - c->loudness_lag;
        loudness[count] = frame >= 0 ? frame_loudness(a, frame) : -c->range_db;
        frame = a->emitted - c->pitch_lag;
        if (frame >= 0)
            pitch_at(a, frame * c->hop, &f0[count], &confidence[count]);
        else
            f0[count] = confidence[count] = 0.0f;
    }
    return count;
}

/* Takes n (<= ANALYSIS_CHUNK) samples; writes the frames they complete (at most n / hop + 1): f0 (Hz, 0 before
 * the pitch lag), confidence and loudness (dB), as StreamingAnalyzer.process does. Returns how many, or -1
 * (n out of range). */
int tb_analysis_process(tb_analysis *a, const float *samples, int n, float *f0, float *confidence, float *loudness) {
    if (n < 0 || n > ANALYSIS_CHUNK) return -1;
#if defined(FLUSH_DENORMALS)
    unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | FLUSH_DENORMALS);
#endif
    int count = analysis_run(a, samples, n, f0, confidence, loudness);
#if defined(FLUSH_DENORMALS)
    _mm_setcsr(saved_csr);
#endif
    return count;
}

/* YIN (de Cheveigné & Kawahara 2002) of the live window that ends (newest sample) just before `end`, read newest
 * first, as tuibend.pitch.yin.Yin.estimate: the pitch (Hz) and its confidence, 1 - d'(tau), 0 on silence. The
 * difference function is summed directly (Yin's numpy correlates through an FFT: equal within rounding). */
static void yin_estimate(tb_analysis *a, const float *end, float *f0, float *confidence) {
    const tb_live_config *l = &a->live;
    int w = l->yin_integration, lags = l->yin_max_lag, size = a->yin_window;
    double *x = a->yin_samples, *energy = a->yin_energy, *normalised = a->yin_normalised;
    energy[0] = 0.0;
    for (int j = 0; j < size; j++) {
        x[j] = end[-1 - j];
        energy[j + 1] = energy[j] + x[j] * x[j];
    }
    for (int j = size; j < size + YIN_LANES; j++) x[j] = 0.0; /* read by the last lanes, never kept */
    /* d(tau) = sum_j<w (x_j - x_j+tau)^2, then d'(tau) = d(tau) / (the mean of d(1) .. d(tau)) */
    normalised[0] = 1.0;
    double running = 0.0;
    for (int block = 1; block <= lags; block += YIN_LANES) {
        double correlation[YIN_LANES] = {0}; /* YIN_LANES lags at once, each summed in order (vectors across lags) */
        for (int j = 0; j < w; j++)
            for (int k = 0; k < YIN_LANES; k++) correlation[k] += x[j] * x[j + block + k];
        for (int tau = block; tau < block + YIN_LANES && tau <= lags; tau++) {
            double difference = energy[w] + (energy[w + tau] - energy[tau]) - 2.0 * correlation[tau - block];
            running += difference;
            double mean = running / tau;
            normalised[tau] = difference / (mean > 1e-12 ? mean : 1e-12);
        }
    }
    /* the first dip below the threshold, down to its local minimum; else the lowest */
    int lowest = l->yin_min_lag, tau = -1;
    for (int t = l->yin_min_lag; t < lags; t++) {
        if (normalised[t] < l->yin_threshold) {
            tau = t;
            break;
        }
        if (normalised[t] < normalised[lowest]) lowest = t;
    }
    if (tau < 0) tau = lowest;
    else
        while (tau + 1 < lags && normalised[tau + 1] < normalised[tau]) tau++;
    /* a parabola through tau and its neighbours */
    double left = normalised[tau - 1 > 1 ? tau - 1 : 1], centre = normalised[tau];
    double right = normalised[tau + 1 < lags ? tau + 1 : lags], curvature = left - 2.0 * centre + right;
    double shift = fabs(curvature) > 1e-12 ? 0.5 * (left - right) / curvature : 0.0;
    shift = shift < -1.0 ? -1.0 : shift > 1.0 ? 1.0 : shift;
    *f0 = (float)(l->sample_rate / (tau + shift));
    double sure = 1.0 - centre;
    sure = sure < 0.0 ? 0.0 : sure > 1.0 ? 1.0 : sure;
    *confidence = energy[w] <= YIN_SILENCE_POWER * w ? 0.0f : (float)sure; /* digital silence: unvoiced */
}

/* A live block, as tuibend.pitch.analysis.LiveFeatures.process: n (<= ANALYSIS_CHUNK) frames of `channels`
 * interleaved samples in, downmixed into `dry` [n] (NaN and Inf heard as silence); per frame it completes (at most
 * n / hop + 1), the pitch to play (Hz, shifted), its confidence, the loudness (dB) and the player's own pitch
 * (`pitch`, before the shift). Returns how many frames, or -1 (n or channels out of range, or not live). */
int tb_analysis_live(tb_analysis *a, const float *input, int n, int channels, float *dry, float *f0,
                     float *confidence, float *loudness, float *pitch) {
    if (!a->is_live || n < 0 || n > ANALYSIS_CHUNK || channels < 1) return -1;
#if defined(FLUSH_DENORMALS)
    unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | FLUSH_DENORMALS);
#endif
    const tb_live_config *l = &a->live;
    for (int i = 0; i < n; i++) {
        float sum = input[(size_t)i * channels];
        for (int ch = 1; ch < channels; ch++) sum += input[(size_t)i * channels + ch];
        float sample = channels > 1 ? sum / (float)channels : sum;
        dry[i] = isfinite(sample) ? sample : 0.0f; /* a misbehaving source: silence, passed on nowhere */
    }
    int count = analysis_run(a, dry, n, pitch, confidence, loudness);
    int64_t first = a->emitted - count;
    for (int i = 0; i < count; i++) {
        /* a note's first frames after quiet, where the tracker's pitch is not voiced yet, take the newest
         * samples' pitch; only there (mid-phrase YIN's short window is less sure than holding) */
        a->frames_since_quiet = loudness[i] < l->quiet_db ? 0 : a->frames_since_quiet + 1;
        int voiced = confidence[i] >= a->c.voiced;
        if (voiced) {
            a->last_voiced = pitch[i];
        } else {
            float provisional = NAN;
            if (l->onset && a->frames_since_quiet >= 1 && a->frames_since_quiet <= l->onset_frames) {
                float estimate, sure;
                yin_estimate(a, analysis_samples(a, (first + i + 1) * a->c.hop), &estimate, &sure);
                if (sure >= l->onset_confidence) provisional = estimate;
            }
            if (!isnan(provisional)) a->last_voiced = provisional;
            if (!isnan(a->last_voiced)) pitch[i] = a->last_voiced;
        }
        f0[i] = pitch[i] * l->pitch_ratio;
    }
#if defined(FLUSH_DENORMALS)
    _mm_setcsr(saved_csr);
#endif
    return count;
}
