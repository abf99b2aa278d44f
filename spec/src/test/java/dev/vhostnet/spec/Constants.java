package dev.vhostnet.spec;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.Map;
import java.util.TreeMap;

/** Reads the public static final int constants of a class, so tables in tests can be checked both ways. */
final class Constants {
    private Constants() {
    }

    static int of(final Class<?> type, final String name) {
        try {
            return type.getField(name).getInt(null);
        } catch (final NoSuchFieldException e) {
            throw new AssertionError(type.getSimpleName() + " has no constant " + name, e);
        } catch (final IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    /** Every public static final int field of {@code type}, by name. */
    static Map<String, Integer> all(final Class<?> type) {
        final Map<String, Integer> out = new TreeMap<>();
        for (final Field f : type.getFields()) {
            final int m = f.getModifiers();
            if (Modifier.isStatic(m) && Modifier.isFinal(m) && f.getType() == int.class) {
                try {
                    out.put(f.getName(), f.getInt(null));
                } catch (final IllegalAccessException e) {
                    throw new AssertionError(e);
                }
            }
        }
        return out;
    }
}
