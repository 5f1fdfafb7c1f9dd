/**
 * Runnable examples, each a {@code main} with a {@code run(PrintStream, …)} that the tests call at
 * small sizes:
 * <ul>
 *   <li>{@link io.tessera.examples.QuickStart}: the README's quick start, checked against the oracle;</li>
 *   <li>{@link io.tessera.examples.CustomPattern}: a pattern written as a function, drawn and printed;</li>
 *   <li>{@link io.tessera.examples.Interop}: direct buffers, foreign segments and {@code .npy} files
 *       without copies.</li>
 * </ul>
 * Still to come, next to these once the engine has them: a training step (forward, backward, an
 * optimizer update) and a decode loop over a KV cache.
 */
package io.tessera.examples;
