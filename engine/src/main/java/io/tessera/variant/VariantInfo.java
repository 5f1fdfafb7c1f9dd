package io.tessera.variant;

/**
 * One registered attention variant.
 *
 * @param name       unique, stable, lower-case id (used by the bench and the property suite)
 * @param family     e.g. "fused block-sparse", "low-rank", "kernelized"
 * @param paper      where its definition comes from
 * @param complexity time complexity in n (sequence), d (head dim) and the variant's parameters
 * @param contract   what it promises against dense attention
 */
public record VariantInfo(String name, String family, String paper, String complexity, AccuracyContract contract) {
    public VariantInfo {
        if (name == null || !name.matches("[a-z0-9][a-z0-9-]*")) throw new IllegalArgumentException("name must be a lower-case id, got " + name);
        if (contract == null) throw new NullPointerException("contract");
    }
}
