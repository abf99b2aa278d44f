package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A QEMU (TCG) guest running guest-init.sh with one virtio-net NIC on a vhost-user socket. The
 * serial console goes to a log file; tests wait for the guest's "E2E:" marker lines.
 */
public final class QemuGuest implements AutoCloseable {
    /** Guest memory; it must be a shared memfd so the vhost-user back-end can map it. */
    private static final String MEMORY = "256M";
    /**
     * Lines after which waiting for a marker is pointless: the scenario, the kernel or QEMU gave
     * up. QEMU prefixes errors and warnings alike with its name; only errors count.
     */
    private static final Pattern FATAL = Pattern.compile("E2E:FAIL=|Kernel panic|^qemu-system-\\S+: (?!.*warning: )");

    private final GuestConfig config;
    private final ChildProcess process;
    private final long startNanos;

    private QemuGuest(GuestConfig config, ChildProcess process, long startNanos) {
        this.config = config;
        this.process = process;
        this.startNanos = startNanos;
    }

    /** Boots the guest. The back-end must already listen on {@code config.vhostSocket()}. */
    public static QemuGuest boot(GuestImage image, GuestConfig config, Path logDir) throws IOException {
        Path log = logDir.resolve("guest-" + config.name() + ".log");
        long start = System.nanoTime();
        return new QemuGuest(config, ChildProcess.start("qemu-" + config.name(), command(image, config), log), start);
    }

    /**
     * Optional additions to the command line built from a {@link GuestConfig}, for tests that need
     * more than the standard scenario (reconnection, migration).
     *
     * @param kernelArgs   appended to the kernel command line (e.g. "no_timer_check", "e2e.mode=soak")
     * @param chardevProps appended to the vhost-user chardev (e.g. "reconnect=1")
     * @param qemuArgs     appended to QEMU's arguments (e.g. "-qmp", "-incoming")
     * @param devicesBeforeNic QEMU arguments placed just before the NIC's {@code -device}: devices the NIC
     *                     depends on, which QEMU must create first (an IOMMU, the PCIe port it sits on)
     */
    public record Extras(List<String> kernelArgs, List<String> chardevProps, List<String> qemuArgs,
                         List<String> devicesBeforeNic) {
        public static final Extras NONE = new Extras(List.of(), List.of(), List.of());

        public Extras {
            kernelArgs = List.copyOf(kernelArgs);
            chardevProps = List.copyOf(chardevProps);
            qemuArgs = List.copyOf(qemuArgs);
            devicesBeforeNic = List.copyOf(devicesBeforeNic);
        }

        public Extras(List<String> kernelArgs, List<String> chardevProps, List<String> qemuArgs) {
            this(kernelArgs, chardevProps, qemuArgs, List.of());
        }
    }

    /** Boots the guest with {@code extras} added to its command line; see {@link #boot(GuestImage, GuestConfig, Path)}. */
    public static QemuGuest boot(GuestImage image, GuestConfig config, Path logDir, Extras extras) throws IOException {
        Path log = logDir.resolve("guest-" + config.name() + ".log");
        long start = System.nanoTime();
        return new QemuGuest(config,
                ChildProcess.start("qemu-" + config.name(), command(image, config, extras), log), start);
    }

    /**
     * Guest RAM of a migrated guest: {@link #MEMORY} plus 8 KiB, i.e. not a multiple of 256 KiB. QEMU 7.2
     * syncs the migration dirty bitmap of a RAM block whose size is a multiple of 64 pages with a fast path
     * that clears the dirty bits without resetting the TCG TLB entries that map those pages, so the vCPU's
     * later stores through those entries are not tracked: the destination keeps stale copies of pages the
     * guest itself wrote (lost updates: kernel list and slab corruption, "id N is not a head"). Upstream
     * fixed it in QEMU 9.0 ("physmem: Fix migration dirty bitmap coherency with TCG memory access"); 7.2
     * (Debian 12) has not. Any other size takes the per-page path, which resets the TLB for every page it
     * clears. KVM guests are not affected (their dirty log comes from the kernel). The property
     * {@code vhostnet.e2e.migrationMemory} overrides it (e.g. 256M reproduces QEMU's lost updates).
     */
    public static final String MIGRATION_MEMORY = System.getProperty("vhostnet.e2e.migrationMemory", "262152K");

    /**
     * As {@link #boot(GuestImage, GuestConfig, Path, Extras)}, with guest RAM ({@link #MIGRATION_MEMORY}) in
     * {@code memoryFile} (shared, e.g. on /dev/shm) instead of an anonymous memfd, so a test can read the
     * guest's RAM from outside (migration tests compare source and destination page by page). GPA n is at
     * file offset n.
     */
    public static QemuGuest boot(GuestImage image, GuestConfig config, Path logDir, Extras extras, Path memoryFile)
            throws IOException {
        Path log = logDir.resolve("guest-" + config.name() + ".log");
        long start = System.nanoTime();
        List<String> cmd = command(image, config, extras);
        int i = cmd.indexOf("memory-backend-memfd,id=mem,size=" + MEMORY + ",share=on");
        cmd.set(i, "memory-backend-file,id=mem,size=" + MIGRATION_MEMORY + ",mem-path=" + memoryFile + ",share=on");
        cmd.set(cmd.indexOf("-m") + 1, MIGRATION_MEMORY);
        return new QemuGuest(config, ChildProcess.start("qemu-" + config.name(), cmd, log), start);
    }

    static List<String> command(GuestImage image, GuestConfig c, Extras x) {
        List<String> cmd = command(image, c);
        if (!x.kernelArgs().isEmpty()) {
            int i = cmd.indexOf("-append") + 1;
            cmd.set(i, cmd.get(i) + " " + String.join(" ", x.kernelArgs()));
        }
        if (!x.chardevProps().isEmpty()) {
            for (int i = 0; i < cmd.size(); i++) {
                if (cmd.get(i).startsWith("socket,id=c0,")) {
                    cmd.set(i, cmd.get(i) + "," + String.join(",", x.chardevProps()));
                }
            }
        }
        if (!x.devicesBeforeNic().isEmpty()) {
            cmd.addAll(cmd.lastIndexOf("-device"), x.devicesBeforeNic()); // the NIC is the last device
        }
        cmd.addAll(x.qemuArgs());
        return cmd;
    }

    static List<String> command(GuestImage image, GuestConfig c) {
        String append = String.join(" ",
                "console=ttyS0",
                "panic=1", // with -no-reboot a panic ends QEMU instead of hanging the test
                // Under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic the boot.
                "no_timer_check",
                "e2e.role=" + c.role().kernelName(),
                "e2e.ip=" + c.ip(),
                "e2e.peer=" + c.peerIp(),
                "e2e.mib=" + c.payloadMiB(),
                "e2e.flows=" + c.flows(),
                "e2e.tput=" + c.throughputMiB(),
                "e2e.tputruns=" + c.throughputRuns());
        String nic = String.join(",",
                "virtio-net-pci",
                "netdev=n0",
                "mac=" + c.mac(),
                "vectors=0", // QEMU 7.2 under TCG crashes starting vhost with MSI-X; INTx works
                "romfile="); // no iPXE option ROM: we boot a kernel directly
        String netdev = "vhost-user,id=n0,chardev=c0";
        if (c.queuePairs() > 1) {
            // The back-end must offer as many pairs (--queues); QEMU asks it with GET_QUEUE_NUM.
            netdev += ",queues=" + c.queuePairs();
            nic += ",mq=on";
        }
        if (!c.extraNicProps().isEmpty()) {
            nic += "," + String.join(",", c.extraNicProps());
        }
        List<String> cmd = new ArrayList<>(List.of(
                E2eSettings.qemuBinary(),
                "-accel", "tcg", // KVM hangs on this host; TCG is slower but deterministic
                "-nodefaults", "-display", "none", "-no-reboot",
                "-smp", String.valueOf(c.cpus()),
                "-m", MEMORY,
                "-object", "memory-backend-memfd,id=mem,size=" + MEMORY + ",share=on",
                "-numa", "node,memdev=mem",
                "-kernel", image.kernel().toString(),
                "-initrd", image.initramfs().toString(),
                "-append", append,
                "-serial", "stdio",
                // Client side of vhost-user: the back-end is the server and owns the socket.
                "-chardev", "socket,id=c0,path=" + c.vhostSocket(),
                "-netdev", netdev,
                "-device", nic));
        return cmd;
    }

    public GuestConfig config() {
        return config;
    }

    public Path consoleLog() {
        return process.console().file();
    }

    /**
     * A marker line seen on the console.
     *
     * @param line      the line from "E2E:" on
     * @param value     what follows "E2E:NAME=", or null for a marker without value
     * @param sinceBoot when the harness read it, counted from QEMU's start
     */
    public record Marker(String line, String value, Duration sinceBoot) {
    }

    /**
     * Waits for "E2E:NAME" or "E2E:NAME=value". Fails fast on E2E:FAIL, a kernel panic, a QEMU
     * error or QEMU's exit.
     */
    public Marker await(String name, Duration timeout) throws InterruptedException {
        // find(), not matches(): a kernel message may still share the line with a marker.
        Pattern marker = Pattern.compile("E2E:" + Pattern.quote(name) + "(?:=(\\S+))?(?=\\s|$).*");
        ConsoleLog.Hit hit = process.console().await(marker, FATAL, timeout);
        Matcher m = hit.matcher();
        return new Marker(m.group(), m.group(1), Duration.ofNanos(hit.nanoTime() - startNanos));
    }

    /**
     * Waits for "E2E:NAME" or "E2E:NAME=value" on a console line with index {@code fromLine} or
     * later ({@link ConsoleLog#lineCount()}), failing fast on lines matching {@code fatal} (may be
     * null) instead of the usual ones: QEMU reports a vanished back-end with error lines.
     */
    public ConsoleLog.Hit awaitSince(int fromLine, String name, Duration timeout, Pattern fatal)
            throws InterruptedException {
        // group(1): the value, or null
        Pattern marker = Pattern.compile("E2E:" + Pattern.quote(name) + "(?:=(\\S+))?(?=\\s|$).*");
        return process.console().await(marker, fatal, timeout, fromLine);
    }

    /** The serial console (and QEMU's own messages). */
    public ConsoleLog console() {
        return process.console();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Waits for "E2E:NAME=value" and returns value. */
    public String awaitValue(String name, Duration timeout) throws InterruptedException {
        Marker m = await(name, timeout);
        if (m.value() == null) {
            throw new ConsoleLog.ConsoleWaitException("marker " + m.line() + " in " + consoleLog() + " has no value");
        }
        return m.value();
    }

    /** Waits for the guest to power itself off; true if QEMU exited within {@code timeout}. */
    public boolean awaitPowerOff(Duration timeout) throws InterruptedException {
        return process.awaitExit(timeout);
    }

    @Override
    public void close() {
        process.close();
    }

    @Override
    public String toString() {
        return "QemuGuest[" + config.name() + ", " + process + "]";
    }
}
