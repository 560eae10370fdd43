/* The executor: a pthread pool whose workers run a whole program, node by node, with a barrier
 * after the nodes the lowering marks (the nodes between two barriers share a phase: independent
 * products, or tiny nodes one thread runs alone one after the other; a phase of such nodes only
 * is run inside the barrier before it, by the last thread to arrive). Workers spin for 2 ms between
 * runs and then sleep on a condition variable, so an idle context costs no CPU. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lc_graph.h"
#include "lc_simd.h"

#ifndef LC_ISA_NAME
#define LC_ISA_NAME "scalar"
#endif

enum { SPIN_BEFORE_YIELD = 2000 };

/* How long an idle worker spins for the next run before it sleeps: longer than the engine's Python work
 * between two runs (a decode step's, a bench's reset between prompts: 0.2-1 ms), so that a run does
 * not wait for a sleeping worker to be woken (on a VM a halted vCPU can take milliseconds); 20000 spins
 * (0.3 ms on Zen 4) had let workers sleep between the runs of short prompts, which then took 2x their
 * time at random. libgomp spins about as long by default. */
#define SPIN_BEFORE_SLEEP_S 2e-3

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
    /* profiling: the seconds the last thread at a barrier spent in the serial phase it ran, written
     * before it lets the others on (so thread 0 reads it after its wait, ordered by the barrier) */
    double serial_seconds;
};

typedef struct { lc_pool *pool; int ith; } worker_arg;

static double profile_seconds[LC_OP_COUNT];
static int64_t profile_counts[LC_OP_COUNT];
static int64_t profile_runs, profile_barriers;
static double profile_barrier_wait;  /* thread 0's seconds at barriers waiting for the others' work */
static double profile_serial_elsewhere;  /* ... waiting while another thread ran a serial phase */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void reset_chunks(lc_pool *pool, int n_used) {
    for (int s = 0; s < n_used; s++) atomic_store_explicit(&pool->chunk[s].next, pool->n_threads, memory_order_relaxed);
}

static void record(int op, double seconds) {
    profile_seconds[op] += seconds;
    profile_counts[op] += 1;
}

/* A node one thread runs for all: a one-thread task, or for LC_RUN_FIRST_CLAIM the pool's task as
 * thread 0 sees it; on the scratch of the thread that runs it. */
static void run_alone(const lc_node *node, const lc_task *task) {
    atomic_int next;
    lc_task own = *task;
    own.ith = 0;
    own.nth = node->run == LC_RUN_ALONE ? 1 : task->nth;
    own.next_chunk = &next;
    atomic_store_explicit(&next, own.nth, memory_order_relaxed);
    lc_ops[node->op](node, &own);
}

/* How many nodes from `first` make a phase that one thread runs alone (none of them run by all),
 * or 0. */
static int32_t serial_phase_length(const lc_program *p, int32_t first) {
    for (int32_t k = first; k < p->n_nodes; k++) {
        if (p->nodes[k].run == LC_RUN_ALL) return 0;
        if (p->nodes[k].barrier_after || k == p->n_nodes - 1) return k - first + 1;
    }
    return 0;
}

/* n_used: the chunk counters the phase's nodes used. The last thread to arrive runs the n_serial
 * nodes of the next phase before it lets the others on, when one thread runs them all: the others
 * would only wait for it at the barrier after them. next_product (or NULL): the next phase's first
 * product, whose first weight bytes each thread asks for (lc_prefetch_first_chunk) while it waits, or
 * as it lets the others on. Returns the seconds this thread spent in the serial nodes or waiting
 * when it is thread 0 and profiles (its waits count to the profile's barrier wait, its serial nodes
 * to their ops). */
static double barrier(lc_pool *pool, int n_used, const lc_node *serial, int32_t n_serial, const lc_node *next_product,
                      const lc_task *task) {
    const int n = pool->n_threads;
    const int phase = atomic_load_explicit(&pool->barrier_phase, memory_order_relaxed);
    const int timed = pool->profile && task->ith == 0;
    if (n > 1 && atomic_fetch_add_explicit(&pool->barrier_count, 1, memory_order_acq_rel) != n - 1) {
        const double waiting = timed ? lc_now_seconds() : 0.0;
        if (next_product) lc_prefetch_first_chunk(next_product, task->ith, task->nth);
        for (int spins = 0; atomic_load_explicit(&pool->barrier_phase, memory_order_acquire) == phase; spins++) {
            if (spins < SPIN_BEFORE_YIELD) cpu_relax();
            else sched_yield();  /* the cores may be shared: let the thread we wait for run */
        }
        if (!timed) return 0.0;
        const double waited = lc_now_seconds() - waiting;
        profile_barrier_wait += waited - pool->serial_seconds;
        profile_serial_elsewhere += pool->serial_seconds;
        return waited;
    }
    atomic_store_explicit(&pool->barrier_count, 0, memory_order_relaxed);
    reset_chunks(pool, n_used);
    const double start = pool->profile ? lc_now_seconds() : 0.0;
    for (int32_t k = 0; k < n_serial; k++) {
        const double t0 = timed ? lc_now_seconds() : 0.0;
        run_alone(&serial[k], task);
        if (pool->profile) record(serial[k].op, timed ? lc_now_seconds() - t0 : 0.0);
    }
    const double serial_seconds = pool->profile ? lc_now_seconds() - start : 0.0;
    if (pool->profile) pool->serial_seconds = timed ? 0.0 : serial_seconds;  /* thread 0's own count to their ops */
    atomic_fetch_add_explicit(&pool->barrier_phase, 1, memory_order_release);
    if (next_product) lc_prefetch_first_chunk(next_product, task->ith, task->nth);
    return timed ? serial_seconds : 0.0;
}

/* the first MUL_MAT of the phase that starts at node first, or NULL */
static const lc_node *next_product(const lc_program *p, int32_t first) {
    for (int32_t k = first; k < p->n_nodes; k++) {
        if (p->nodes[k].op == LC_OP_MUL_MAT) return &p->nodes[k];
        if (p->nodes[k].barrier_after) break;
    }
    return NULL;
}

static void run_nodes(lc_pool *pool, const lc_program *p, int ith) {
    /* Everything read from the program is read before the last barrier: once every thread has
     * passed it, the caller may free the program while a worker is still leaving this loop. */
    const lc_node *nodes = p->nodes;
    const int32_t n_nodes = p->n_nodes;
    lc_task task = {ith, pool->n_threads, pool->n_kv, p->scratch ? p->scratch + (int64_t)ith * p->scratch_floats : NULL,
                    p->scratch_floats, NULL};
    const int timed = pool->profile && ith == 0;
    if (timed) profile_runs++;  /* thread 0 only: the workers' "+= 0" was a data race (TSan) */
    int n_shared = 0;  /* nodes run by all threads since the last barrier */
    for (int32_t k = 0; k < n_nodes; k++) {
        const lc_node *node = &nodes[k];
        const double t0 = timed ? lc_now_seconds() : 0.0;
        double barrier_seconds = 0.0;
        if (node->run == LC_RUN_ALL) {
            task.next_chunk = &pool->chunk[n_shared++].next;
            lc_ops[node->op](node, &task);
        } else if (ith == 0) {
            run_alone(node, &task);
        }
        if (node->barrier_after || k == n_nodes - 1 || n_shared == LC_MAX_SHARED_NODES) {
            const int32_t n_serial = serial_phase_length(p, k + 1);
            barrier_seconds = barrier(pool, n_shared, nodes + k + 1, n_serial, next_product(p, k + 1 + n_serial), &task);
            n_shared = 0;
            if (timed) profile_barriers++;
            if (timed) record(node->op, lc_now_seconds() - t0 - barrier_seconds);
            k += n_serial;
        } else if (timed) {
            record(node->op, lc_now_seconds() - t0);
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
        const double idle_since = lc_now_seconds();
        for (int spins = 1; gen == seen && !atomic_load(&pool->stop); spins++) {
            cpu_relax();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
            if (spins % 1024 == 0 && lc_now_seconds() - idle_since > SPIN_BEFORE_SLEEP_S) break;
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
    /* Nothing to run (a subgraph of reshapes only): the workers stay asleep. Woken, they would read
     * the program after this returns, as no barrier holds the caller for them: a freed program
     * (the executable dropped), or the next one under a stale generation, run twice out of step. */
    if (program->n_nodes == 0) return 0;
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

void lc_profile_get(double *seconds, int64_t *counts, int64_t *runs, double *barrier_wait) {
    for (int k = 0; k < LC_OP_COUNT; k++) {
        seconds[k] = profile_seconds[k];
        counts[k] = profile_counts[k];
    }
    runs[0] = profile_runs;
    runs[1] = profile_barriers;
    barrier_wait[0] = profile_barrier_wait;
    barrier_wait[1] = profile_serial_elsewhere;
}

void lc_profile_reset(void) {
    for (int k = 0; k < LC_OP_COUNT; k++) {
        profile_seconds[k] = 0.0;
        profile_counts[k] = 0;
    }
    profile_runs = profile_barriers = 0;
    profile_barrier_wait = profile_serial_elsewhere = 0.0;
}

const char *lc_isa(void) { return LC_ISA_NAME; }
