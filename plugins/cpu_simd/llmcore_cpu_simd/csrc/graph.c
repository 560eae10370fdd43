/* The executor: a pthread pool whose workers run a whole program, node by node, with a barrier
 * after the nodes the lowering marks (the nodes between two barriers share a phase: independent
 * products, or tiny nodes thread 0 runs alone one after the other). Workers spin briefly between
 * runs and then sleep on a condition variable, so an idle context costs no CPU. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "lc_graph.h"
#include "lc_simd.h"

#ifndef LC_ISA_NAME
#define LC_ISA_NAME "scalar"
#endif

enum { SPIN_BEFORE_SLEEP = 20000, SPIN_BEFORE_YIELD = 2000 };

struct lc_pool {
    int n_threads;
    pthread_t *threads;
    atomic_int barrier_count;
    atomic_int barrier_phase;
    atomic_int generation;  /* bumped once per run */
    /* dynamic work sharing within a node: a counter per node run by all threads since the last
     * barrier, each on its own cache line, reset at each barrier */
    struct { atomic_int next; char pad[64 - sizeof(atomic_int)]; } chunk[LC_MAX_SHARED_NODES];
    atomic_int stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    const lc_program *program;
    int32_t n_kv;
    int profile;
};

typedef struct { lc_pool *pool; int ith; } worker_arg;

static double profile_seconds[LC_OP_COUNT];
static int64_t profile_counts[LC_OP_COUNT];
static int64_t profile_runs, profile_barriers;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void reset_chunks(lc_pool *pool, int n_used) {
    for (int s = 0; s < n_used; s++) atomic_store_explicit(&pool->chunk[s].next, pool->n_threads, memory_order_relaxed);
}

/* n_used: the chunk counters the phase's nodes used */
static void barrier(lc_pool *pool, int n_used) {
    const int n = pool->n_threads;
    if (n == 1) {
        reset_chunks(pool, n_used);
        return;
    }
    const int phase = atomic_load_explicit(&pool->barrier_phase, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&pool->barrier_count, 1, memory_order_acq_rel) == n - 1) {
        atomic_store_explicit(&pool->barrier_count, 0, memory_order_relaxed);
        reset_chunks(pool, n_used);
        atomic_fetch_add_explicit(&pool->barrier_phase, 1, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&pool->barrier_phase, memory_order_acquire) == phase; spins++) {
        if (spins < SPIN_BEFORE_YIELD) cpu_relax();
        else sched_yield();  /* the cores may be shared: let the thread we wait for run */
    }
}

static void run_nodes(lc_pool *pool, const lc_program *p, int ith) {
    /* Everything read from the program is read before the last barrier: once every thread has
     * passed it, the caller may free the program while a worker is still leaving this loop. */
    const lc_node *nodes = p->nodes;
    const int32_t n_nodes = p->n_nodes;
    lc_task task = {ith, pool->n_threads, pool->n_kv, p->scratch ? p->scratch + (int64_t)ith * p->scratch_floats : NULL, NULL};
    atomic_int alone_next;  /* the chunk counter of a node thread 0 runs alone */
    const int timed = pool->profile && ith == 0;
    profile_runs += timed;
    int n_shared = 0;  /* nodes run by all threads since the last barrier */
    for (int32_t k = 0; k < n_nodes; k++) {
        const lc_node *node = &nodes[k];
        const int op = node->op;
        const double t0 = timed ? now_seconds() : 0.0;
        if (node->run == LC_RUN_ALL) {
            task.next_chunk = &pool->chunk[n_shared++].next;
            lc_ops[op](node, &task);
        } else if (ith == 0) {
            lc_task own = task;
            if (node->run == LC_RUN_ALONE) own.nth = 1;
            own.next_chunk = &alone_next;
            atomic_store_explicit(&alone_next, own.nth, memory_order_relaxed);
            lc_ops[op](node, &own);
        }
        if (node->barrier_after || k == n_nodes - 1 || n_shared == LC_MAX_SHARED_NODES) {
            barrier(pool, n_shared);
            n_shared = 0;
            profile_barriers += timed;
        }
        if (timed) {
            profile_seconds[op] += now_seconds() - t0;
            profile_counts[op] += 1;
        }
    }
}

static void *worker_main(void *varg) {
    worker_arg *arg = varg;
    lc_pool *pool = arg->pool;
    const int ith = arg->ith;
    free(arg);
    int seen = 0;
    for (;;) {
        int gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spins = 0; gen == seen && spins < SPIN_BEFORE_SLEEP && !atomic_load(&pool->stop); spins++) {
            cpu_relax();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((gen = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        run_nodes(pool, pool->program, ith);
    }
}

lc_pool *lc_pool_new(int n_threads) {
    lc_pool *pool = calloc(1, sizeof(lc_pool));
    if (!pool) return NULL;
    pool->n_threads = n_threads < 1 ? 1 : n_threads;
    reset_chunks(pool, LC_MAX_SHARED_NODES);
    const char *profile = getenv("LLMCORE_PROFILE");
    pool->profile = profile && profile[0] && profile[0] != '0';
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)pool->n_threads, sizeof(pthread_t));
    for (int ith = 1; ith < pool->n_threads; ith++) {
        worker_arg *arg = malloc(sizeof(worker_arg));
        arg->pool = pool;
        arg->ith = ith;
        pthread_create(&pool->threads[ith], NULL, worker_main, arg);
    }
    return pool;
}

void lc_pool_free(lc_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int ith = 1; ith < pool->n_threads; ith++) pthread_join(pool->threads[ith], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool);
}

int lc_pool_threads(const lc_pool *pool) { return pool->n_threads; }

int lc_graph_run(const lc_program *program, int32_t n_kv) {
    lc_pool *pool = program->pool;
    pool->program = program;
    pool->n_kv = n_kv;
    if (pool->n_threads > 1) {
        pthread_mutex_lock(&pool->mutex);
        atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    run_nodes(pool, program, 0);
    return 0;
}

void lc_profile_get(double *seconds, int64_t *counts, int64_t *runs) {
    for (int k = 0; k < LC_OP_COUNT; k++) {
        seconds[k] = profile_seconds[k];
        counts[k] = profile_counts[k];
    }
    runs[0] = profile_runs;
    runs[1] = profile_barriers;
}

void lc_profile_reset(void) {
    for (int k = 0; k < LC_OP_COUNT; k++) {
        profile_seconds[k] = 0.0;
        profile_counts[k] = 0;
    }
    profile_runs = profile_barriers = 0;
}

const char *lc_isa(void) { return LC_ISA_NAME; }
