package dev.vhostnet.backend.vhostpci;

import jnr.ffi.LibraryLoader;
import jnr.ffi.annotations.Out;

/**
 * pipe(2) and socket(2), which the back-end's own libc binding has no use for: hostile cases hand a pipe or a
 * bare socket over where a memfd or an eventfd belongs.
 */
public interface Pipes {
    Pipes INSTANCE = LibraryLoader.create(Pipes.class).load("c");

    int AF_UNIX = 1;
    int SOCK_STREAM = 1;

    int pipe(@Out int[] fds);

    int socket(int domain, int type, int protocol);
}
