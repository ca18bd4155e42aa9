/*
 * sustain.c - when does a stage keep up, and which rate to try next: the
 * decisions of the sustained-rate search, apart from the machinery that
 * runs it (bench.c), so that they can be tested on made-up samples.
 *
 * A step offers a fixed rate for a hold window and samples every stage's
 * backlog ("behind": its consumer lag in notifications; fan-out's lag in
 * events times the mean audience). A stage keeps up when, over the hold,
 *  - its backlog does not grow: the least-squares slope times the hold is at
 *    most SUSTAIN_GROWTH_REL of what arrived plus SUSTAIN_GROWTH_ABS records
 *    (half a gathered sink transaction: the backlog saws up and down by a batch
 *    even when a stage keeps up), and
 *  - its backlog stays bounded: the mean of the last samples is at most
 *    SUSTAIN_LEVEL_S seconds of input, or SUSTAIN_LEVEL_ABS records at low
 *    rates.
 */
#include "bench/bench_int.h"

#include <math.h>
#include <stdio.h>

double sustain_slope(const double *t, const double *y, int n)
{
    if (n < 2) return 0;
    double mt = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mt += t[i];
        my += y[i];
    }
    mt /= n;
    my /= n;
    double sxy = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        sxy += (t[i] - mt) * (y[i] - my);
        sxx += (t[i] - mt) * (t[i] - mt);
    }
    return sxx > 0 ? sxy / sxx : 0;
}

double sustain_tail(const double *y, int n)
{
    int k = n < SUSTAIN_TAIL ? n : SUSTAIN_TAIL;
    if (k <= 0) return 0;
    double s = 0;
    for (int i = n - k; i < n; i++) s += y[i];
    return s / k;
}

bool sustain_keeps_up(double rate, double hold_s, double slope, double tail, char *why, size_t n)
{
    double growth = slope * hold_s;
    double grow_max = SUSTAIN_GROWTH_REL * rate * hold_s + SUSTAIN_GROWTH_ABS;
    double level_max = fmax(SUSTAIN_LEVEL_S * rate, SUSTAIN_LEVEL_ABS);
    if (growth > grow_max) {
        if (why) snprintf(why, n, "backlog grew %.0f/s", slope);
        return false;
    }
    if (tail > level_max) {
        if (why) snprintf(why, n, "backlog %.0f (> %.0f)", tail, level_max);
        return false;
    }
    if (why && n) why[0] = '\0';
    return true;
}

double sustain_next(double lo, double hi, double cap, double tol)
{
    if (hi <= 0) return 0;
    if (lo > 0 && hi / lo <= 1 + tol) return 0;
    double mid = lo > 0 ? sqrt(lo * hi) : hi / 2;
    /* A failed step's bottleneck processed `cap` notifications/s while
     * overloaded: the rate it can take is about that (a little more, as the
     * overloaded stages upstream leave it more CPU at a lower rate). Try it
     * when it lies above lo by more than the precision; bisect otherwise.
     * A bottleneck that processed nearly all of hi (a near miss) puts the
     * rate just below hi: step down by the precision, not to the middle
     * (with nothing kept up yet that was half of hi, and three more steps
     * to climb back). */
    double margin = 1 + tol / 2;
    double c = cap * 0.97;
    if (c > 0 && c > (lo > 0 ? lo * margin : 0)) return fmin(c, hi / margin);
    return mid;
}

double sustain_start(sustain_search_t *s, double burst, double first, double tol)
{
    s->lo = 0;
    s->hi = burst * 1.02;
    s->hi_tried = false;
    s->tol = tol;
    return fmin(first, s->hi / (1 + tol / 2));
}

double sustain_step(sustain_search_t *s, double rate, bool pass, double cap)
{
    if (pass) {
        s->lo = rate;
        cap = 0;
        if (s->lo >= s->hi) s->hi = s->lo * 1.25; /* the untried bound kept up: raise it */
    } else {
        s->hi = rate;
        s->hi_tried = true;
    }
    double next = sustain_next(s->lo, s->hi, cap, s->tol);
    if (next == 0 && !s->hi_tried) next = s->hi;
    return next;
}
