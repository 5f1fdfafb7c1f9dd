package io.tessera.variant;

import java.util.List;

/**
 * Service through which each variant family registers itself ({@code provides} in the module
 * descriptor and {@code META-INF/services} for class-path users).
 */
public interface VariantProvider {
    List<VariantInfo> variants();
}
