package dev.vhostnet.bench.e2e;

import java.util.Iterator;
import java.util.List;
import java.util.Map;

/** Just enough JSON output for result files: maps, lists, strings, numbers, booleans, null. */
final class Json {
    private Json() {
    }

    static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, 0);
        return out.append('\n').toString();
    }

    private static void write(Object value, StringBuilder out, int depth) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String s) {
            string(s, out);
        } else if (value instanceof Double d) {
            // JSON has no NaN/Infinity; a missing rate is null.
            out.append(d.isNaN() || d.isInfinite() ? "null" : String.format(java.util.Locale.ROOT, "%.6g", d));
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map<?, ?> map) {
            container(map.entrySet().iterator(), '{', '}', out, depth, (e, o) -> {
                string(String.valueOf(e.getKey()), o);
                o.append(": ");
                write(e.getValue(), o, depth + 1);
            });
        } else if (value instanceof List<?> list) {
            container(list.iterator(), '[', ']', out, depth, (v, o) -> write(v, o, depth + 1));
        } else {
            string(value.toString(), out);
        }
    }

    private interface ElementWriter<T> {
        void write(T element, StringBuilder out);
    }

    private static <T> void container(Iterator<T> it, char open, char close, StringBuilder out, int depth,
                                      ElementWriter<T> element) {
        out.append(open);
        if (!it.hasNext()) {
            out.append(close);
            return;
        }
        String indent = "  ".repeat(depth + 1);
        while (it.hasNext()) {
            out.append('\n').append(indent);
            element.write(it.next(), out);
            if (it.hasNext()) {
                out.append(',');
            }
        }
        out.append('\n').append("  ".repeat(depth)).append(close);
    }

    private static void string(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
