/**
 * Compiled block-sparse maps: {@link io.tessera.layout.BlockLayout} (the non-empty tiles of a
 * pattern at given block sizes, FULL or PARTIAL, with tile masks on demand),
 * {@link io.tessera.layout.HeadLayouts} (one layout per head or one shared),
 * {@link io.tessera.layout.LayoutSpec} (anything that compiles to layouts: a pattern, per-head
 * patterns, a fixed layout), and the CSR/BSR forms of a layout for the explicit sparse path.
 * Depends only on {@code tensor}; kernels read layouts, never patterns.
 */
package io.tessera.layout;
