package io.tessera.tornado;

/**
 * What one call did on the device, from TornadoVM's profiler.
 *
 * @param kernel           "attention", "sparse", "gemm" or "decode"
 * @param device           the device's name
 * @param deviceKernelNanos time the kernel ran on the device; 0 means it did not run there (a
 *                         bailout to sequential Java), which tests treat as a failure
 * @param bytesToDevice    bytes copied host → device by this execution
 * @param bytesToHost      bytes copied device → host by this execution
 * @param hostCopies       host-side staging copies Tessera made to hand tensors to TornadoVM (0:
 *                         tensors are wrapped in place)
 * @param firstExecution   whether this call built the plan (kernel compilation, layout upload)
 * @param executions       plan executions the call took (decode: more than 1 when the keys and
 *                         values to upload exceeded one staging buffer)
 * @param stagedRows       decode: key/value rows (tokens × KV heads) uploaded to the resident pools
 *                         by this call; 0 for the other kernels
 */
public record DeviceRun(String kernel, String device, long deviceKernelNanos, long bytesToDevice, long bytesToHost,
                        int hostCopies, boolean firstExecution, int executions, long stagedRows) {

    /** A one-execution run of a kernel that stages no key/value rows. */
    public DeviceRun(String kernel, String device, long deviceKernelNanos, long bytesToDevice, long bytesToHost, int hostCopies, boolean firstExecution) {
        this(kernel, device, deviceKernelNanos, bytesToDevice, bytesToHost, hostCopies, firstExecution, 1, 0);
    }
}
