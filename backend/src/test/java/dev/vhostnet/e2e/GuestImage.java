package dev.vhostnet.e2e;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The guest's kernel (the host's newest /boot/vmlinuz-*) and a busybox initramfs built from the
 * resources under {@code guest/}. The initramfs is cached in target/e2e-guest, keyed by the
 * kernel version and the content of the build and init scripts, so edits to either rebuild it.
 */
public final class GuestImage {
    private static final String RESOURCE_DIR = "guest/";
    private static final List<String> RESOURCES = List.of("build-initramfs.sh", "guest-init.sh");
    private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(2);
    private static final Pattern NUMBER_OR_TEXT = Pattern.compile("\\d{1,18}|\\D+");
    private static GuestImage cached;

    private final Path kernel;
    private final String kernelVersion;
    private final Path initramfs;

    private GuestImage(Path kernel, String kernelVersion, Path initramfs) {
        this.kernel = kernel;
        this.kernelVersion = kernelVersion;
        this.initramfs = initramfs;
    }

    /** The image for this JVM, built on first use. */
    public static synchronized GuestImage get() throws IOException, InterruptedException {
        if (cached == null) {
            cached = build(E2eSettings.targetDir().resolve("e2e-guest"));
        }
        return cached;
    }

    public Path kernel() {
        return kernel;
    }

    public String kernelVersion() {
        return kernelVersion;
    }

    public Path initramfs() {
        return initramfs;
    }

    private static GuestImage build(Path cacheDir) throws IOException, InterruptedException {
        Path kernel = newestKernel();
        String version = kernel.getFileName().toString().substring("vmlinuz-".length());
        if (!Files.isReadable(kernel)) {
            throw new IOException(kernel + " is not readable (Debian makes it root-only)");
        }

        Path scripts = Files.createDirectories(cacheDir.resolve("scripts"));
        MessageDigest digest = sha256();
        digest.update(version.getBytes());
        for (String name : RESOURCES) {
            byte[] content = readResource(name);
            digest.update(content);
            Path target = scripts.resolve(name);
            Files.write(target, content);
            Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        String key = HexFormat.of().formatHex(digest.digest()).substring(0, 16);

        Path outDir = cacheDir.resolve(key);
        Path image = outDir.resolve("initramfs.cpio.gz");
        if (!Files.exists(image)) {
            runBuild(scripts.resolve("build-initramfs.sh"), outDir, version, cacheDir.resolve("build-" + key + ".log"));
        }
        return new GuestImage(kernel, version, image);
    }

    private static void runBuild(Path script, Path outDir, String version, Path log)
            throws IOException, InterruptedException {
        List<String> command = List.of("bash", script.toString(), outDir.toString(), version);
        try (ChildProcess build = ChildProcess.start("initramfs-build", command, log)) {
            if (!build.awaitExit(BUILD_TIMEOUT)) {
                throw new IOException("initramfs build did not finish in " + BUILD_TIMEOUT + "; see " + log);
            }
            build.console().drain(Duration.ofSeconds(2));
            if (build.exitValue() != 0) {
                throw new IOException("initramfs build failed (exit " + build.exitValue() + "):\n"
                        + ConsoleLog.tail(log, 30));
            }
        }
    }

    /** Highest version among /boot/vmlinuz-*, compared numerically part by part (6.10 > 6.9). */
    static Path newestKernel() throws IOException {
        try (Stream<Path> files = Files.list(Path.of("/boot"))) {
            return files.filter(p -> p.getFileName().toString().startsWith("vmlinuz-"))
                    .max(Comparator.comparing(p -> p.getFileName().toString(), GuestImage::compareVersions))
                    .orElseThrow(() -> new IOException("no /boot/vmlinuz-* kernel found"));
        }
    }

    static int compareVersions(String a, String b) {
        Matcher ma = NUMBER_OR_TEXT.matcher(a);
        Matcher mb = NUMBER_OR_TEXT.matcher(b);
        while (ma.find() && mb.find()) {
            String x = ma.group();
            String y = mb.group();
            boolean numeric = Character.isDigit(x.charAt(0)) && Character.isDigit(y.charAt(0));
            int c = numeric ? Long.compare(Long.parseLong(x), Long.parseLong(y)) : x.compareTo(y);
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(a.length(), b.length());
    }

    private static byte[] readResource(String name) throws IOException {
        // Read through the class loader so this also works from the backend test-jar.
        try (InputStream in = GuestImage.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) {
                throw new IOException("missing test resource " + RESOURCE_DIR + name);
            }
            return in.readAllBytes();
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public String toString() {
        return "GuestImage[kernel=" + kernel + ", initramfs=" + initramfs + "]";
    }
}
