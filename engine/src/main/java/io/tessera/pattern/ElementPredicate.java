package io.tessera.pattern;

/** The exact element rule of a single-head pattern: may query {@code q} attend to key {@code kv}? */
@FunctionalInterface
public interface ElementPredicate {
    boolean allows(int q, int kv);
}
