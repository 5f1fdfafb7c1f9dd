/**
 * Tensors: float32 arrays over {@link java.lang.foreign.MemorySegment}s with shapes, element strides
 * and views ({@code slice}, {@code select}, {@code transpose}), whose lifetime is the
 * {@link java.lang.foreign.Arena} they are allocated in. The bottom layer: it depends on nothing else
 * in Tessera.
 */
package io.tessera.tensor;
