package dev.vhostnet.e2e.migration;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Source and destination RAM compared page by page once a migration completed and before the destination
 * runs: every page must be equal, since both guests are paused at the same instant of the guest's life.
 * Differing pages are classified ({@link PageClassifier}) so a report says where to look.
 */
record RamComparison(long pages, List<Long> differing, Map<String, Integer> byClass, List<String> samples) {
    private static final int MAX_SAMPLES = 8;

    static RamComparison compare(GuestRam source, GuestRam dest, PageClassifier classifier) {
        if (source.size() != dest.size()) {
            throw new AssertionError("RAM sizes differ: " + source.size() + " / " + dest.size());
        }
        List<Long> differing = new ArrayList<>();
        Map<String, Integer> byClass = new TreeMap<>();
        List<String> samples = new ArrayList<>();
        for (long p = 0; p < source.pages(); p++) {
            if (source.samePage(dest, p)) {
                continue;
            }
            differing.add(p);
            String c = classifier.classify(p);
            byClass.merge(c, 1, Integer::sum);
            if (samples.size() < MAX_SAMPLES) {
                int[] span = source.differingSpan(dest, p);
                samples.add(String.format("gpa 0x%x (%s): bytes 0x%x..0x%x differ", p * GuestRam.PAGE, c, span[0],
                        span[1]));
            }
        }
        return new RamComparison(source.pages(), List.copyOf(differing), byClass, List.copyOf(samples));
    }

    /** Writes the first differing pages of both sides into {@code dir} (source-GPA.bin, dest-GPA.bin), if any. */
    void dump(GuestRam source, GuestRam dest, Path dir) throws IOException {
        if (differing.isEmpty()) {
            return;
        }
        Files.createDirectories(dir);
        for (long p : differing.subList(0, Math.min(differing.size(), 32))) {
            String gpa = Long.toHexString(p * GuestRam.PAGE);
            Files.write(dir.resolve("source-" + gpa + ".bin"), source.page(p));
            Files.write(dir.resolve("dest-" + gpa + ".bin"), dest.page(p));
        }
    }

    @Override
    public String toString() {
        return differing.size() + " of " + pages + " pages differ" + (differing.isEmpty() ? ""
                : " " + byClass + "; e.g. " + String.join("; ", samples));
    }
}
