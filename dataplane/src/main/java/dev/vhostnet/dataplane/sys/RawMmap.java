package dev.vhostnet.dataplane.sys;

import com.kenai.jffi.CallContext;
import com.kenai.jffi.CallingConvention;
import com.kenai.jffi.Invoker;
import com.kenai.jffi.LastError;
import com.kenai.jffi.Library;
import com.kenai.jffi.Type;

/**
 * mmap(2) called through jffi's invoker. jnr-ffi's bytecode-generated stubs mangle the sixth argument of
 * this call (observed with jnr-ffi 2.2.16 on x86_64: glibc rejects the offset with EINVAL before any
 * syscall), so this one call bypasses them. Control path only.
 */
final class RawMmap {
    private static final long MMAP;
    private static final CallContext CONTEXT = CallContext.getCallContext(Type.SINT64,
        new Type[] {Type.SINT64, Type.SINT64, Type.SINT32, Type.SINT32, Type.SINT32, Type.SINT64},
        CallingConvention.DEFAULT, true);

    static {
        LibC.INSTANCE.getpid(); // make sure libc is loaded
        final Library libc = Library.getCachedInstance("libc.so.6", Library.LAZY | Library.GLOBAL);
        MMAP = libc.getSymbolAddress("mmap");
        if (MMAP == 0) {
            throw new ExceptionInInitializerError("mmap not found in libc.so.6: " + Library.getLastError());
        }
    }

    private RawMmap() {
    }

    static long mmap(final long length, final int prot, final int flags, final int fd, final long offset) {
        return Invoker.getInstance().invokeN6(CONTEXT, MMAP, 0L, length, prot, flags, fd, offset);
    }

    static int lastErrno() {
        return LastError.getInstance().get();
    }
}
