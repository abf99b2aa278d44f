package dev.vhostnet.dataplane.virtq;

/**
 * Why a virtqueue was declared broken. Constant messages, so that the dataplane reports a violation
 * without allocating; the control plane logs it once.
 */
public enum QueueError {
    NONE("no error"),
    AVAIL_IDX_JUMP("available index moved by more than the queue size"),
    HEAD_OUT_OF_RANGE("available ring entry is not a descriptor index"),
    NEXT_OUT_OF_RANGE("descriptor next index out of range"),
    CHAIN_TOO_LONG("descriptor chain longer than the queue size (or a loop)"),
    INDIRECT_NOT_NEGOTIATED("indirect descriptor without VIRTIO_F_RING_INDIRECT_DESC"),
    NESTED_INDIRECT("indirect descriptor inside an indirect table"),
    INDIRECT_WITH_NEXT("indirect descriptor with the NEXT flag"),
    BAD_INDIRECT_SIZE("indirect table length is zero, not a multiple of 16 or too large"),
    INDIRECT_UNMAPPED("indirect table outside guest memory"),
    BUFFER_UNMAPPED("descriptor buffer outside guest memory"),
    READABLE_AFTER_WRITABLE("device-readable descriptor after a device-writable one"),
    TOO_MANY_SEGMENTS("descriptor chain has too many segments"),
    RING_UNMAPPED("ring address outside guest memory"),
    BAD_BUFFER_ID("buffer id out of range"),
    MEMORY_FAULT("fault while accessing guest memory"),
    /** Not an error: the translation is being asked from the front-end; the chain is retried later. */
    IOTLB_MISS("IOTLB miss (translation requested)"),
    IOTLB_DENIED("IOTLB permission denied"),
    /** The front-end never answered an IOTLB miss (QEMU sends nothing for an address the guest has not mapped). */
    IOTLB_TIMEOUT("IOTLB translation never arrived"),
    INFLIGHT_FULL("more descriptors outstanding than inflight tracking holds (buffer ids reused)");

    private final String description;

    QueueError(final String description) {
        this.description = description;
    }

    public String description() {
        return description;
    }
}
