package dev.vhostnet.dataplane.sys;

import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.ByteBuffer;

/**
 * A small off-heap buffer with a stable address, for syscall arguments (eventfd counters, epoll events,
 * socket options). Each owner keeps its own so that no two threads share one.
 */
public final class NativeScratch {
    private final ByteBuffer memory;
    private final UnsafeBuffer buffer;
    private final long address;

    public NativeScratch(final int size) {
        memory = BufferUtil.allocateDirectAligned(Math.max(64, size), 64);
        buffer = new UnsafeBuffer(memory);
        address = buffer.addressOffset();
    }

    public long address() {
        return address;
    }

    public UnsafeBuffer buffer() {
        return buffer;
    }
}
