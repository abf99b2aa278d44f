package dev.vhostnet.dataplane.virtq;

/**
 * A descriptor chain popped from a virtqueue, already validated and translated: the device-readable
 * segments and the device-writable segments, as host addresses and lengths. Reused for every chain
 * (arrays sized once, at queue start), so walking allocates nothing.
 */
public final class DescriptorChain {
    int head = -1;
    int readCount;
    int writeCount;
    long readBytes;
    long writeBytes;
    long[] readAddr;
    int[] readLen;
    long[] writeAddr;
    int[] writeLen;

    public DescriptorChain(final int capacity) {
        readAddr = new long[capacity];
        readLen = new int[capacity];
        writeAddr = new long[capacity];
        writeLen = new int[capacity];
    }

    void reset(final int head) {
        this.head = head;
        readCount = 0;
        writeCount = 0;
        readBytes = 0;
        writeBytes = 0;
    }

    int capacity() {
        return readAddr.length;
    }

    void ensureCapacity(final int capacity) {
        if (capacity > readAddr.length) {
            readAddr = new long[capacity];
            readLen = new int[capacity];
            writeAddr = new long[capacity];
            writeLen = new int[capacity];
        }
    }

    boolean addReadable(final long hostAddr, final int len) {
        if (readCount == readAddr.length) {
            return false;
        }
        readAddr[readCount] = hostAddr;
        readLen[readCount++] = len;
        readBytes += len;
        return true;
    }

    boolean addWritable(final long hostAddr, final int len) {
        if (writeCount == writeAddr.length) {
            return false;
        }
        writeAddr[writeCount] = hostAddr;
        writeLen[writeCount++] = len;
        writeBytes += len;
        return true;
    }

    /** Id the device returns in the used ring (split: head index; packed: buffer id). */
    public int head() {
        return head;
    }

    public int readCount() {
        return readCount;
    }

    public int writeCount() {
        return writeCount;
    }

    public long readBytes() {
        return readBytes;
    }

    public long writeBytes() {
        return writeBytes;
    }

    public long readAddr(final int i) {
        return readAddr[i];
    }

    public int readLen(final int i) {
        return readLen[i];
    }

    public long writeAddr(final int i) {
        return writeAddr[i];
    }

    public int writeLen(final int i) {
        return writeLen[i];
    }
}
