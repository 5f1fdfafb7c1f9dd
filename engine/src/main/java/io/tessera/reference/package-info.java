/**
 * The float64 oracle every variant and backend is tested against
 * ({@link io.tessera.reference.DenseReference}), the naive fp32 computation that sets the error
 * budget, and the one tolerance rule and error measure of an EXACT contract
 * ({@link io.tessera.reference.Tolerance}), used by the property suite, the bench's oracle checks
 * and the documentation alike. Slow on purpose: it is the specification.
 */
package io.tessera.reference;
