package io.tessera.bench.peers;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import io.tessera.bench.decode.DecodePeer;
import java.nio.FloatBuffer;

/**
 * PyTorch 2.7.1's {@code scaled_dot_product_attention} for one decode step through DJL 0.36: one
 * query per sequence against contiguous {@code [B, Hkv, keys, D]} keys and values. Grouped-query
 * heads the fast way: the G query heads of a KV head are its G query rows ({@code [B, Hkv, G, D]},
 * the same floats as {@code [B, H, 1, D]}; exact for one query per sequence, which attends every
 * key), so the fused CPU kernel reads each K/V head once. The documented {@code enable_gqa=True}
 * takes PyTorch's math path on the CPU, which repeats K and V per query head: 3.2 s a step on a
 * 32K cache (Zen 5, 2 threads) against tens of ms this way. Run as TorchScript, as
 * {@link DjlSdpaPeer} does.
 */
public final class DjlSdpaDecodePeer implements DecodePeer {
    private static final String SOURCE = """
            class SDPADecode(Module):
              __parameters__ = []
              __buffers__ = []
              training : bool
              _is_full_backward_hook : Optional[bool]
              def forward(self: __torch__.SDPADecode,
                q: Tensor,
                k: Tensor,
                v: Tensor) -> Tensor:
                _0 = torch.scaled_dot_product_attention(q, k, v)
                return _0
            """;

    private Model model;
    private Block block;
    private NDManager manager;
    private NDArray q, k, v, out;

    @Override public String name() { return "DJL 0.36 + PyTorch " + Engine.getEngine("PyTorch").getVersion() + " (scaled_dot_product_attention, query heads as rows per KV head)"; }

    @Override public String id() { return "djl-sdpa"; }

    @Override
    public String unavailableReason() { return DjlPyTorchPeer.pyTorchUnavailableReason(); }

    @Override
    public void prepare(int batch, int heads, int kvHeads, int keys, int headDim, FloatBuffer qa, FloatBuffer ka, FloatBuffer va, int threads) throws Exception {
        close();
        DjlPyTorchPeer.useThreads(threads);
        model = DjlSdpaPeer.loadModule("sdpadecode", "SDPADecode", SOURCE);
        block = model.getBlock();
        manager = Engine.getEngine("PyTorch").newBaseManager();
        if (heads % kvHeads != 0) throw new IllegalArgumentException("heads must be a multiple of kvHeads, got " + heads + " and " + kvHeads);
        q = manager.create(qa, new Shape(batch, kvHeads, heads / kvHeads, headDim));   // [B, H, 1, D] read as [B, Hkv, G, D]
        k = manager.create(ka, new Shape(batch, kvHeads, keys, headDim));
        v = manager.create(va, new Shape(batch, kvHeads, keys, headDim));
    }

    @Override
    public void step() {
        if (out != null) out.close();
        out = block.forward(new ParameterStore(manager, false), new NDList(q, k, v), false).singletonOrThrow();
    }

    @Override
    public float[] output() { return out.toFloatArray(); }

    @Override
    public void close() {
        if (manager != null) manager.close();
        if (model != null) model.close();
        manager = null;
        model = null;
        out = null;
    }
}
