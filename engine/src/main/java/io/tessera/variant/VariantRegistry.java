package io.tessera.variant;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

/** Every attention variant Tessera provides, discovered once through {@link VariantProvider}. */
public final class VariantRegistry {
    private static final Map<String, VariantInfo> VARIANTS = load();

    private VariantRegistry() {}

    private static Map<String, VariantInfo> load() {
        Map<String, VariantInfo> byName = new LinkedHashMap<>();
        for (VariantProvider provider : ServiceLoader.load(VariantProvider.class, VariantRegistry.class.getClassLoader())) {
            for (VariantInfo info : provider.variants()) {
                VariantInfo previous = byName.putIfAbsent(info.name(), info);
                if (previous != null) {
                    throw new IllegalStateException("variant name '" + info.name() + "' registered twice (" + previous.family() + ", " + info.family() + ")");
                }
            }
        }
        return Collections.unmodifiableMap(byName);
    }

    /** All variants, in registration order. */
    public static List<VariantInfo> all() {
        return new ArrayList<>(VARIANTS.values());
    }

    /** The variant called {@code name}; throws naming the known ones when there is none. */
    public static VariantInfo named(String name) {
        VariantInfo info = VARIANTS.get(name);
        if (info == null) throw new IllegalArgumentException("no variant named '" + name + "'; known: " + VARIANTS.keySet());
        return info;
    }
}
