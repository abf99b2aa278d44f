package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Two guests behind an emulated Intel IOMMU (VIRTIO_F_ACCESS_PLATFORM: every ring and buffer address is
 * an IOVA the back-end translates through its device IOTLB) joined through our back-end in peer mode:
 * 20 MiB cross intact both ways at once (the receiver streams every byte back), checked by md5 on both
 * sides.
 *
 * <p>Matrix, two boots of a guest pair: lazy invalidation (the guest kernel's default, DMA-FQ: unmaps are
 * batched and flushed by a full device-IOTLB flush, which QEMU forwards as per-section invalidations whose
 * size overflows a signed 64-bit value) and strict ({@code iommu.strict=1}: every unmap is invalidated at
 * once, so every buffer misses again). In each boot one guest runs a packed ring and the other a split
 * ring, so both formats transmit and receive under both modes: four combinations in two boots.
 *
 * <p>The NIC sits behind a PCIe root port, where {@code ats=on} takes effect (on q35's root bus virtio-pci
 * has no ATS capability): with ATS and {@code device-iotlb=on} Linux sends device-IOTLB invalidations, and
 * QEMU forwards their full flush per notifier section with sizes near 2^64, the case a signed size check
 * dropped. The test checks invalidations did arrive (the back-end logs its IOTLB counters when a ring
 * stops).
 */
@Tag("e2e")
class ViommuTwoGuestE2ETest {
    private static final int PAYLOAD_MIB = 20;
    private static final Pattern IOTLB_LINE = Pattern.compile(
            "(\\S+): IOTLB dropped on GET_VRING_BASE \\((\\d+) entries; (\\d+) updates, (\\d+) invalidations so far\\)");

    @Test
    void lazyInvalidationPackedAndSplitBothWays() throws Exception {
        run("lazy", List.of(), "DMA-FQ");
    }

    @Test
    void strictInvalidationPackedAndSplitBothWays() throws Exception {
        run("strict", List.of("iommu.strict=1"), "DMA");
    }

    private static void run(String mode, List<String> kernelArgs, String expectedDomain) throws Exception {
        Path logDir = E2eDirs.newLogDir("viommu-" + mode);
        Path socketDir = E2eDirs.newSocketDir("viommu");
        try (BackendProcess backend = BackendProcess.start(socketDir, logDir, List.of(), List.of())) {
            GuestImage image = GuestImage.get();
            Duration timeout = E2eSettings.markerTimeout();
            GuestConfig receiverConfig = new GuestConfig("receiver-packed", backend.socketA(), "52:54:00:e2:e0:01",
                    GuestRole.RECEIVER, "10.0.0.1", "10.0.0.2", PAYLOAD_MIB, nicProps(true));
            GuestConfig senderConfig = new GuestConfig("sender-split", backend.socketB(), "52:54:00:e2:e0:02",
                    GuestRole.SENDER, "10.0.0.2", "10.0.0.1", PAYLOAD_MIB, nicProps(false));
            List<String> args = new ArrayList<>(List.of("intel_iommu=on", "e2e.echo=1"));
            args.addAll(kernelArgs);
            QemuGuest.Extras extras = new QemuGuest.Extras(args, List.of(),
                    List.of("-machine", "q35,kernel-irqchip=off"),
                    List.of("-device", "intel-iommu,intremap=off,device-iotlb=on",
                            "-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1"));
            String sent;
            String received;
            String echoed;
            long receivedBytes;
            long echoedBytes;
            try (QemuGuest receiver = QemuGuest.boot(image, receiverConfig, logDir, extras);
                 QemuGuest sender = QemuGuest.boot(image, senderConfig, logDir, extras)) {
                try {
                    assertEquals(expectedDomain, receiver.awaitValue("IOMMU_DOMAIN", timeout), "receiver's DMA domain");
                    assertEquals(expectedDomain, sender.awaitValue("IOMMU_DOMAIN", timeout), "sender's DMA domain");
                    assertTrue(VirtioFeatureBits.RING_PACKED.in(receiver.awaitValue("FEATURES", timeout)),
                            "receiver negotiated a packed ring");
                    assertTrue(!VirtioFeatureBits.RING_PACKED.in(sender.awaitValue("FEATURES", timeout)),
                            "sender negotiated a split ring");
                    sent = sender.awaitValue("SENT_MD5", timeout);
                    received = receiver.awaitValue("RECV_MD5_0", timeout);
                    receivedBytes = Long.parseLong(receiver.awaitValue("RECV_BYTES_0", timeout));
                    echoedBytes = Long.parseLong(sender.awaitValue("ACK_BYTES_0", timeout));
                    echoed = sender.awaitValue("ACK_MD5_0", timeout);
                    receiver.await("DONE", timeout);
                    sender.await("DONE", timeout);
                    // Powering off stops the rings (GET_VRING_BASE), which makes the back-end log its IOTLB counters.
                    receiver.awaitPowerOff(Duration.ofSeconds(30));
                    sender.awaitPowerOff(Duration.ofSeconds(30));
                } catch (AssertionError | RuntimeException e) {
                    throw new AssertionError(e.getMessage() + diagnostics(receiver, sender, backend), e);
                }
            }
            long bytes = PAYLOAD_MIB * 1048576L;
            String logs = TwoGuestScenario.diagnostics(logDir.resolve("guest-receiver-packed.log"),
                    logDir.resolve("guest-sender-split.log"), backend.logFile());
            assertEquals(bytes, receivedBytes, () -> "bytes the packed guest received" + logs);
            assertEquals(sent, received, () -> "md5 split -> packed" + logs);
            assertEquals(bytes, echoedBytes, () -> "bytes echoed back to the split guest" + logs);
            assertEquals(sent, echoed, () -> "md5 packed -> split" + logs);
            Map<String, Long> invalidations = invalidationsPerDevice(backend.logFile());
            BackendStats stats = backend.stopAndReadStats();
            for (Path socket : List.of(backend.socketA(), backend.socketB())) {
                for (int q = 0; q < 2; q++) {
                    assertEquals(0, stats.queue(socket, q).errors(), "errors on " + socket + " q" + q + logs);
                }
            }
            assertEquals(2, invalidations.size(), () -> "IOTLB counters of both devices logged: " + invalidations + logs);
            invalidations.forEach((device, n) -> assertTrue(n > 0,
                    () -> device + " received no IOTLB invalidation" + logs));
            System.out.printf("e2e viommu %s: %d MiB intact both ways (md5 %s); IOTLB invalidations per device %s;"
                    + " logs: %s%n", mode, PAYLOAD_MIB, sent, invalidations, logDir);
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }

    private static List<String> nicProps(boolean packed) {
        return List.of("bus=rp0", "disable-legacy=on", "iommu_platform=on", "ats=on", NicProps.packed(packed));
    }

    /** Device name -> the highest invalidation count it logged. */
    private static Map<String, Long> invalidationsPerDevice(Path backendLog) throws IOException {
        Map<String, Long> max = new HashMap<>();
        for (String line : Files.readAllLines(backendLog, StandardCharsets.UTF_8)) {
            Matcher m = IOTLB_LINE.matcher(line);
            if (m.find()) {
                max.merge(m.group(1), Long.parseLong(m.group(4)), Math::max);
            }
        }
        return max;
    }

    private static String diagnostics(QemuGuest receiver, QemuGuest sender, BackendProcess backend) {
        return TwoGuestScenario.diagnostics(receiver.consoleLog(), sender.consoleLog(), backend.logFile());
    }
}
