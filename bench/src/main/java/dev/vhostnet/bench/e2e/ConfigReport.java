package dev.vhostnet.bench.e2e;

import dev.vhostnet.bench.e2e.RunResult.Side;
import dev.vhostnet.e2e.dpdk.Testpmd;
import dev.vhostnet.e2e.dpdk.VirtioUserLoop;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/** The runs of one loop configuration on both sides, their medians and the ratio under-test/reference. */
final class ConfigReport {
    private final VirtioUserLoop loop;
    private final Map<Side, Contender> contenders;
    private final List<RunResult> runs = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    private final double maxForeignCores;

    ConfigReport(VirtioUserLoop loop, Map<Side, Contender> contenders, double maxForeignCores) {
        this.loop = loop;
        this.contenders = contenders;
        this.maxForeignCores = maxForeignCores;
    }

    VirtioUserLoop loop() {
        return loop;
    }

    void add(RunResult run) {
        runs.add(run);
        String who = contenders.get(run.side()).label();
        if (!run.ok()) {
            notes.add(who + " round " + run.round() + " " + run.status().name().toLowerCase(Locale.ROOT) + ": "
                    + run.note());
        } else if (!run.problems().isEmpty()) {
            notes.add(who + " round " + run.round() + " inconsistent counts: " + String.join("; ", run.problems()));
        }
        if (run.ok() && run.foreignCores() > maxForeignCores) {
            notes.add(String.format(Locale.ROOT, "%s round %d: other processes used %.2f cores during the window",
                    who, run.round(), run.foreignCores()));
        }
    }

    /**
     * After a side was skipped (feature not negotiated) or failed, its further runs would only repeat
     * that, at a minute each, so the remaining runs of that side are dropped.
     */
    boolean givenUp(Side side) {
        return runs.stream().anyMatch(r -> r.side() == side && !r.ok());
    }

    double medianAtoB(Side side) {
        return median(side, RunResult::aToBPps);
    }

    double medianBtoA(Side side) {
        return median(side, RunResult::bToAPps);
    }

    private double median(Side side, ToDoubleFunction<RunResult> rate) {
        double[] values = runs.stream().filter(r -> r.side() == side && r.ok() && r.problems().isEmpty())
                .mapToDouble(rate).filter(v -> !Double.isNaN(v)).sorted().toArray();
        if (values.length == 0) {
            return Double.NaN;
        }
        int mid = values.length / 2;
        return values.length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    private double ratio(ToDoubleFunction<Side> median) {
        return median.applyAsDouble(Side.UNDER_TEST) / median.applyAsDouble(Side.REFERENCE);
    }

    /** Two table rows (A->B, B->A) followed by this configuration's notes. */
    List<String> tableRows() {
        List<String> rows = new ArrayList<>();
        rows.add(row(loop.name(), "A->B", medianAtoB(Side.UNDER_TEST), medianAtoB(Side.REFERENCE),
                ratio(this::medianAtoB)));
        rows.add(row("", "B->A", medianBtoA(Side.UNDER_TEST), medianBtoA(Side.REFERENCE), ratio(this::medianBtoA)));
        for (String note : notes) {
            rows.add("    note: " + note.replace("\n", "\n          "));
        }
        return rows;
    }

    static String header(Map<Side, Contender> contenders) {
        return String.format(Locale.ROOT, "%-16s %-5s %18s %18s %8s", "config", "dir",
                contenders.get(Side.UNDER_TEST).label() + " Mpps", contenders.get(Side.REFERENCE).label() + " Mpps",
                "ratio");
    }

    private static String row(String config, String dir, double underTest, double reference, double ratio) {
        return String.format(Locale.ROOT, "%-16s %-5s %18s %18s %8s", config, dir, fmt(underTest / 1e6, 3),
                fmt(reference / 1e6, 3), fmt(ratio, 2));
    }

    private static String fmt(double v, int decimals) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    Map<String, Object> toJson(Map<String, Object> header) {
        Map<String, Object> json = new LinkedHashMap<>(header);
        json.put("config", loop.name());
        Map<String, Object> frontEnd = new LinkedHashMap<>();
        frontEnd.put("packedRing", loop.packed());
        frontEnd.put("mrgRxbuf", loop.mrgRxbuf());
        frontEnd.put("inOrder", loop.inOrder());
        frontEnd.put("frameBytes", loop.frameSize());
        frontEnd.put("queuePairs", loop.queues());
        frontEnd.put("burst", Testpmd.BURST);
        frontEnd.put("injectedPackets", loop.injectedPackets());
        json.put("frontEnd", frontEnd);
        json.put("underTest", side(Side.UNDER_TEST));
        json.put("reference", side(Side.REFERENCE));
        Map<String, Object> ratio = new LinkedHashMap<>();
        ratio.put("aToB", ratio(this::medianAtoB));
        ratio.put("bToA", ratio(this::medianBtoA));
        json.put("ratioUnderTestToReference", ratio);
        json.put("notes", notes);
        return json;
    }

    private Map<String, Object> side(Side side) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("backEnd", contenders.get(side).label());
        json.put("medianMppsAtoB", medianAtoB(side) / 1e6);
        json.put("medianMppsBtoA", medianBtoA(side) / 1e6);
        List<Object> list = new ArrayList<>();
        for (RunResult r : runs) {
            if (r.side() != side) {
                continue;
            }
            Map<String, Object> run = new LinkedHashMap<>();
            run.put("round", r.round());
            run.put("status", r.status().name());
            run.put("mppsAtoB", r.aToBPps() / 1e6);
            run.put("mppsBtoA", r.bToAPps() / 1e6);
            run.put("negotiatedFeatures", r.negotiatedFeatures().stream().map(f -> "0x" + Long.toHexString(f)).toList());
            run.put("foreignCpuCores", r.foreignCores());
            run.put("problems", r.problems());
            run.put("note", r.note());
            list.add(run);
        }
        json.put("runs", list);
        return json;
    }
}
