package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;

/**
 * The hook between a vhost-user front-end connection ({@code VhostUserNetHandler}) and vhost-pci peer mode
 * (spec/VHOST-PCI.md). The handler keeps speaking vhost-user and keeps its own state; the delegation may hand
 * the rings to a device side in another process and take them back.
 *
 * <p>Protocol: every front-end request for which {@link #affects} is true is bracketed by {@link #begin} and
 * {@link #end} on the handler's control thread. {@code begin} takes the rings back if they were delegated (so
 * they run locally at their exact positions when it returns, and GET_VRING_BASE reads exact indexes) and holds
 * the delegation's lock until {@code end}, so that nothing the delegation does from its own threads sees the
 * handler's state half-changed. {@code end} re-exports what changed and delegates again when possible.
 */
public interface DeviceDelegation {
    /** No vhost-pci: the handler runs its rings itself, the link is always up. */
    DeviceDelegation NONE = new DeviceDelegation() {
    };

    /** A front-end connected; {@code device} gives the delegation a view of the handler's state. */
    default void attach(final Device device) {
    }

    /** The front-end connection ended; called before the handler stops and forgets everything. */
    default void detach(final Device device) {
    }

    /** Whether a front-end request of this type may change what the delegation exported. */
    default boolean affects(final int request) {
        return false;
    }

    /**
     * Before an {@link #affects affecting} request: take the rings back if it touches them (and hold the lock until
     * {@link #end}). {@code argument} is the request's first 8 payload bytes (little-endian; -1 if shorter): the
     * ring index in its low byte for the SET/GET_VRING_* requests, the status for SET_STATUS.
     */
    default void begin(final Device device, final int request, final long argument) {
    }

    /** After the request was handled (also when it failed). */
    default void end(final Device device, final int request) {
    }

    /** Features to offer the front-end (GET_FEATURES): a peer may not handle all of them. */
    default long offeredFeatures(final long offered) {
        return offered;
    }

    /** Link state to show the guest (VIRTIO_NET_S_LINK_UP in the config space). */
    default boolean linkUp() {
        return true;
    }

    /** One vring as the front-end set it up. */
    record Ring(int index, int num, long descUserAddr, long availUserAddr, long usedUserAddr, long logGuestAddr,
                boolean logged, boolean started, boolean enabled, EventFd kick, EventFd call) {
    }

    /** The handler's state, read under the delegation's lock (or on the handler's control thread). */
    interface Device {
        String name();

        VirtioNetPort port();

        Dataplane dataplane();

        byte[] mac();

        /** Whether SET_FEATURES was received. */
        boolean featuresSet();

        long ackedFeatures();

        /** Current memory table; its regions keep their fds open (re-exported by the client side). */
        GuestMemory memory();

        int ringCount();

        Ring ring(int index);

        /** The link state changed: tell the front-end (CONFIG_CHANGE_MSG) if it negotiated how. */
        void configChanged();
    }
}
