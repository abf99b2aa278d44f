package dev.vhostnet.e2e.migration;

import java.io.IOException;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One virtqueue as QEMU's device model holds it ({@code x-query-virtio-queue-status}): where its rings are
 * (guest physical addresses) and its positions. For a vhost-user device these are what QEMU saved when it
 * stopped the device: {@code lastAvailIdx} is the back-end's GET_VRING_BASE answer, {@code usedIdx} was read
 * from the used ring in guest memory afterwards; on a destination they are what the migration stream
 * loaded, and {@code lastAvailIdx} is the SET_VRING_BASE the destination's back-end will be given.
 */
record QueueStatus(int queue, long num, long desc, long avail, long used, int lastAvailIdx, int usedIdx,
                   int inuse) {

    static QueueStatus query(Qmp qmp, String devicePath, int queue, Duration timeout)
            throws IOException, InterruptedException {
        String reply = qmp.execute("{\"execute\":\"x-query-virtio-queue-status\",\"arguments\":{\"path\":\""
                + devicePath + "\",\"queue\":" + queue + "}}", timeout);
        if (!reply.contains("\"return\"")) {
            throw new AssertionError("x-query-virtio-queue-status: " + reply);
        }
        return new QueueStatus(queue, field(reply, "vring-num"), field(reply, "vring-desc"),
                field(reply, "vring-avail"), field(reply, "vring-used"), (int) field(reply, "last-avail-idx"),
                (int) field(reply, "used-idx"), (int) field(reply, "inuse"));
    }

    private static long field(String json, String name) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(name) + "\"\\s*:\\s*(\\d+)").matcher(json);
        if (!m.find()) {
            throw new AssertionError("no " + name + " in " + json);
        }
        return Long.parseLong(m.group(1));
    }

    /** Same ring addresses and positions (what a destination must have loaded). */
    boolean samePositions(QueueStatus o) {
        return num == o.num && desc == o.desc && avail == o.avail && used == o.used
                && lastAvailIdx == o.lastAvailIdx && usedIdx == o.usedIdx && inuse == o.inuse;
    }

    @Override
    public String toString() {
        return String.format("q%d{num=%d desc=0x%x avail=0x%x used=0x%x last_avail=%d used_idx=%d inuse=%d}",
                queue, num, desc, avail, used, lastAvailIdx, usedIdx, inuse);
    }
}
