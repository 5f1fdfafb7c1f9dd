/**
 * Runnable examples, each a {@code main} with a {@code run(PrintStream, …)} that the tests call at
 * small sizes:
 * <ul>
 *   <li>{@link io.tessera.examples.QuickStart}: the README's quick start, checked against the oracle;</li>
 *   <li>{@link io.tessera.examples.CustomPattern}: a pattern written as a function, drawn and printed;</li>
 *   <li>{@link io.tessera.examples.Interop}: direct buffers, foreign segments and {@code .npy} files
 *       without copies;</li>
 *   <li>{@link io.tessera.examples.TrainingStep}: gradient descent through sparse attention;</li>
 *   <li>{@link io.tessera.examples.DecodeLoop}: prefill and token-by-token decoding of a ragged batch
 *       with a paged KV cache, checked against attention over the whole sequences.</li>
 * </ul>
 */
package io.tessera.examples;
