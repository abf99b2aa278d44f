package dev.vhostnet.backend.vhostpci;

import jnr.ffi.LibraryLoader;
import jnr.ffi.annotations.Out;

/** pipe(2), which the back-end's own libc binding has no use for: hostile cases hand pipes over as fds. */
public interface Pipes {
    Pipes INSTANCE = LibraryLoader.create(Pipes.class).load("c");

    int pipe(@Out int[] fds);
}
