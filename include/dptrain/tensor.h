/* Tensors, the per-step arena and the autodiff context.
 *
 * A dp_tensor is a contiguous float32 array of up to 4 dims (NCHW for images,
 * [N, F] for features). Parameters are tensors whose data and grad point into
 * the model's flat buffers (see nn/params); activations are carved from the
 * context's arena, which is reset after every step, so the training loop does
 * no malloc/free per op once the first step has sized the arena.
 *
 * Ops (dptrain/ops.h) take a dp_ctx, compute their output and, when a gradient
 * is wanted, push a node on the tape. dp_backward() walks the tape in reverse
 * and each node accumulates (+=) into its inputs' gradients.
 *
 * Errors inside a forward pass are sticky: an op that fails (bad shape, no
 * memory) records the status in the context and returns NULL; every op returns
 * NULL when handed NULL, so the caller checks once, at the loss. */
#ifndef DPTRAIN_TENSOR_H
#define DPTRAIN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/rng.h"
#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DP_MAX_DIMS 4

typedef struct dp_tensor {
    float *data;       /* n floats, row-major, last dim fastest */
    float *grad;       /* n floats once a gradient reached it, else NULL */
    long n;            /* number of elements */
    int ndim;
    int shape[DP_MAX_DIMS];
    int requires_grad; /* gradient flows into this tensor */
    int grad_pooled;   /* grad is this tensor's own block from the context's gradient pool */
} dp_tensor;

typedef struct dp_arena_chunk dp_arena_chunk;
typedef struct dp_grad_block dp_grad_block;
typedef struct dp_grad_bin dp_grad_bin;

/* Gradient buffers of intermediate tensors. A tensor's gradient is dead once
 * the node that produced it has run its backward, so its block goes back to a
 * free list of its size class and the next gradient of that class reuses it:
 * a backward pass holds only the gradients still to be consumed instead of
 * one per activation. Blocks stay allocated across steps (no malloc once the
 * first step has sized the pool, when every step has the same shapes).
 * Graphs whose shapes change from step to step (packed sequences of varying
 * length) are why the sizes are classes (4 per octave) and why a block that
 * no step has asked for in a while is freed: the pool stays near what recent
 * steps needed instead of keeping a block of every size ever seen. */
typedef struct dp_gradpool {
    dp_grad_bin *bins;  /* one free list per size class (nbins of them, allocated on first use) */
    int nbins, busy;    /* busy: a block was handed out since the last reset */
    long clock;         /* resets that followed a step which used the pool */
    dp_grad_block *all; /* every block, for reset and free */
    size_t live, high_water; /* bytes handed out and not returned */
    size_t held;        /* bytes of all blocks (the pool's footprint) */
    long sys_allocs;
} dp_gradpool;

/* Bump allocator over, where the system allows, one reservation of address
 * space (pages faulted in once, then kept; see arena.c). Otherwise, after a
 * reset that found more than one chunk in use, the
 * chunks are merged into one of the high-water size, so from the second step
 * on a step allocates nothing from the system. */
typedef struct dp_arena {
    dp_arena_chunk *head;
    size_t used;        /* bytes handed out since the last reset */
    size_t high_water;  /* most bytes ever handed out between resets */
    long sys_allocs;    /* chunks ever taken from malloc (tests watch it) */
} dp_arena;

struct dp_node;
struct dp_ctx;
typedef void (*dp_backward_fn)(struct dp_ctx *c, struct dp_node *nd);

/* One recorded op. in[] holds up to three inputs; ops with more (concat,
 * weighted sum) put an arena array in ins and the count in nin. ip/fp/saved
 * carry whatever the backward needs (shapes, strides, masks, indices). */
typedef struct dp_node {
    dp_backward_fn backward;
    const char *name;
    dp_tensor *out;
    dp_tensor *in[3];
    dp_tensor **ins;
    int nin;
    int ip[16];
    float fp[4];
    void *saved[3];
} dp_node;

typedef struct dp_tape {
    dp_node *nodes;
    long len, cap;
} dp_tape;

/* Called after each node's backward: the trainer uses it to learn when a
 * parameter's gradient is final and start that bucket's allreduce early. */
typedef void (*dp_backward_hook)(void *user, const dp_node *nd);

typedef struct dp_ctx {
    dp_arena arena;
    dp_gradpool grads;
    dp_tape tape;
    dp_backward_hook after_node; /* NULL: none */
    void *hook_user;
    int training;      /* batch-norm uses batch statistics, dropout is active */
    int grad_enabled;  /* ops record on the tape */
    dp_rng dropout_rng;
    dp_status status;  /* first error of this pass (sticky until reset) */
    /* Synchronised batch-norm: sums n doubles over the data-parallel replicas
     * in place (0 on success). Set by the trainer; core itself never calls MPI.
     * NULL: each replica normalises with its own batch statistics. */
    int (*stat_reduce)(void *user, double *v, int n);
    void *stat_user;
    /* dp_recompute: set while a segment's forward runs again inside backward
     * (batch-norm then leaves its running statistics alone: the first run
     * updated them); replay_tape records that run, kept across steps. */
    int replaying;
    dp_tape replay_tape;
} dp_ctx;

/*! Initialises a context: empty arena and tape, training and grad on. */
void dp_ctx_init(dp_ctx *c);
/*! Frees the arena and the tape (accepts a zeroed context). */
void dp_ctx_free(dp_ctx *c);
/*! Ends a step: forgets the tape, resets the arena, clears the status.
 *  Every tensor created from the context since the last reset is invalid after it. */
void dp_ctx_reset(dp_ctx *c);

/*! Runs backward from `t`. If t->grad is NULL, t must hold one element and its
 *  gradient is seeded with 1; otherwise the caller seeded t->grad.
 *  Parameters' gradients accumulate (+=) into their flat grad buffer, which the
 *  caller zeroes before the step. @return DP_OK or the context's error. */
dp_status dp_backward(dp_ctx *c, dp_tensor *t);
/*! Backward from a one-element tensor whose gradient is seeded with `seed`
 *  (a loss weight, e.g. this rank's share of the global batch). */
dp_status dp_backward_scaled(dp_ctx *c, dp_tensor *t, float seed);

/*! A new arena tensor of the given shape; data uninitialised, no grad. NULL on
 *  failure (status recorded in c). */
dp_tensor *dp_tensor_new(dp_ctx *c, int ndim, const int *shape);
/*! Wraps caller-owned memory (e.g. an input batch) as a leaf tensor with no
 *  gradient; the struct comes from the arena, the data is not copied. */
dp_tensor *dp_tensor_wrap(dp_ctx *c, float *data, int ndim, const int *shape);
/*! Product of shape[0..ndim). */
long dp_shape_numel(int ndim, const int *shape);
/*! Fills t->shape/ndim/n; used for tensors that live outside the arena. */
void dp_tensor_set_shape(dp_tensor *t, int ndim, const int *shape);

/*! Bump allocation of `bytes`, 64-byte aligned; NULL on failure. */
void *dp_arena_alloc(dp_arena *a, size_t bytes);
/*! Everything allocated after a mark can be given back with dp_arena_release
 *  (a backward node's scratch, a recomputed segment); chunks added since the
 *  mark go back to the system. */
typedef struct dp_arena_mark { dp_arena_chunk *head; size_t chunk_used, used; } dp_arena_mark;
dp_arena_mark dp_arena_get_mark(const dp_arena *a);
void dp_arena_release(dp_arena *a, dp_arena_mark m);
void dp_arena_reset(dp_arena *a);
void dp_arena_free(dp_arena *a);

#ifdef __cplusplus
}
#endif
#endif
