package dev.vhostnet.bench.e2e;

import java.util.List;

/**
 * One measured (or skipped, or failed) run of a loop configuration on one side of the comparison.
 * Rates are packets per second received by the front-end: A->B on port 1, B->A on port 0.
 */
record RunResult(Side side, Contender contender, int round, Status status, double aToBPps, double bToAPps,
                 List<Long> negotiatedFeatures, double foreignCores, List<String> problems, String note) {

    enum Status { OK, SKIPPED, FAILED }

    /** Which column of the comparison a run belongs to; normally ours vs DPDK. */
    enum Side { UNDER_TEST, REFERENCE }

    static RunResult skipped(Side side, Contender contender, int round, List<Long> features, String note) {
        return new RunResult(side, contender, round, Status.SKIPPED, Double.NaN, Double.NaN, features, Double.NaN,
                List.of(), note);
    }

    static RunResult failed(Side side, Contender contender, int round, String note) {
        return new RunResult(side, contender, round, Status.FAILED, Double.NaN, Double.NaN, List.of(), Double.NaN,
                List.of(), note);
    }

    boolean ok() {
        return status == Status.OK;
    }
}
