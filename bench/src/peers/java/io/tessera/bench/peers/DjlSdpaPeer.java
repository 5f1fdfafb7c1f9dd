package io.tessera.bench.peers;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * PyTorch 2.7.1's {@code scaled_dot_product_attention} (its fused CPU flash-attention kernel) through
 * DJL 0.36. DJL has no Java call for it, but it runs TorchScript, the way PyTorch's docs deploy models
 * to Java: this peer writes a one-method TorchScript module whose source calls the op, and DJL's
 * libtorch 2.7.1 compiles that source when it loads it (no Python involved). Dense attention calls
 * the op without a mask, causal with {@code is_causal=True}, other patterns with a boolean mask, as
 * PyTorch recommends.
 */
public final class DjlSdpaPeer implements TrainingPeer {
    /** TorchScript source of the module (the serialized form {@code torch.jit.save} writes). */
    private static final String SOURCE = """
            class SDPA(Module):
              __parameters__ = []
              __buffers__ = []
              training : bool
              _is_full_backward_hook : Optional[bool]
              def forward(self: __torch__.SDPA,
                q: Tensor,
                k: Tensor,
                v: Tensor,
                mask: Tensor) -> Tensor:
                if torch.eq(torch.numel(mask), 0):
                  _0 = torch.scaled_dot_product_attention(q, k, v)
                else:
                  if torch.eq(torch.numel(mask), 1):
                    _1 = torch.scaled_dot_product_attention(q, k, v, None, 0., True)
                  else:
                    _1 = torch.scaled_dot_product_attention(q, k, v, mask)
                  _0 = _1
                return _0
            """;

    /**
     * A training step as a second module: the same call on detached copies of q, k, v that require
     * gradients, then {@code torch.autograd.grad} of the output with {@code grad} as its gradient
     * (PyTorch's CPU flash-attention backward where the op takes the flash path).
     */
    private static final String STEP_SOURCE = """
            class SDPAStep(Module):
              __parameters__ = []
              __buffers__ = []
              training : bool
              _is_full_backward_hook : Optional[bool]
              def forward(self: __torch__.SDPAStep,
                q: Tensor,
                k: Tensor,
                v: Tensor,
                mask: Tensor,
                grad: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
                q0 = torch.requires_grad_(torch.detach(q))
                k0 = torch.requires_grad_(torch.detach(k))
                v0 = torch.requires_grad_(torch.detach(v))
                if torch.eq(torch.numel(mask), 0):
                  out = torch.scaled_dot_product_attention(q0, k0, v0)
                else:
                  if torch.eq(torch.numel(mask), 1):
                    out0 = torch.scaled_dot_product_attention(q0, k0, v0, None, 0., True)
                  else:
                    out0 = torch.scaled_dot_product_attention(q0, k0, v0, mask)
                  out = out0
                grads = torch.autograd.grad([out], [q0, k0, v0], annotate(List[Optional[Tensor]], [grad]))
                dq = unchecked_cast(Tensor, grads[0])
                dk = unchecked_cast(Tensor, grads[1])
                dv = unchecked_cast(Tensor, grads[2])
                return (torch.detach(out), dq, dk, dv)
            """;

    private Model model, stepModel;
    private Block block, stepBlock;
    private NDManager manager;
    private NDArray q, k, v, mask, out, dOut;
    private NDList stepResult;

    @Override public String name() { return "DJL 0.36 + PyTorch " + Engine.getEngine("PyTorch").getVersion() + " (scaled_dot_product_attention)"; }

    @Override public String id() { return "djl-sdpa"; }
    @Override public boolean fused() { return true; }

    @Override
    public String unavailableReason() { return DjlPyTorchPeer.pyTorchUnavailableReason(); }

    @Override
    public void prepare(int heads, int n, int headDim, float[] qa, float[] ka, float[] va, boolean[] allowed, int threads) throws Exception {
        close();
        DjlPyTorchPeer.useThreads(threads);
        model = loadModule("sdpa", "SDPA", SOURCE);
        block = model.getBlock();
        manager = Engine.getEngine("PyTorch").newBaseManager();
        Shape shape = new Shape(1, heads, n, headDim);
        q = manager.create(FloatBuffer.wrap(qa), shape);
        k = manager.create(FloatBuffer.wrap(ka), shape);
        v = manager.create(FloatBuffer.wrap(va), shape);
        if (allowed == null) mask = manager.create(new boolean[0], new Shape(0));
        else if (isCausal(allowed, n)) mask = manager.create(new boolean[] {true}, new Shape(1));
        else mask = manager.create(allowed, new Shape(n, n));
    }

    private static boolean isCausal(boolean[] allowed, int n) {
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (allowed[i * n + j] != (j <= i)) return false;
        return true;
    }

    @Override
    public void run() {
        if (out != null) out.close();
        out = block.forward(new ParameterStore(manager, false), new NDList(q, k, v, mask), false).singletonOrThrow();
    }

    @Override
    public float[] output() { return out != null ? out.toFloatArray() : stepResult.get(0).toFloatArray(); }

    @Override
    public void prepareGradient(float[] dOutValues) throws IOException, ai.djl.MalformedModelException {
        stepModel = loadModule("sdpastep", "SDPAStep", STEP_SOURCE);
        stepBlock = stepModel.getBlock();
        dOut = manager.create(FloatBuffer.wrap(dOutValues), q.getShape());
    }

    /** Runs with gradients enabled: the module computes them itself. */
    @Override
    public void step() {
        if (stepResult != null) stepResult.close();
        if (out != null) { out.close(); out = null; }
        // DJL runs modules with PyTorch's grad mode off unless a gradient collector is open.
        try (ai.djl.training.GradientCollector collector = manager.getEngine().newGradientCollector()) {
            stepResult = stepBlock.forward(new ParameterStore(manager, false), new NDList(q, k, v, mask, dOut), true);
        }
    }

    @Override
    public float[][] gradients() {
        return new float[][] {stepResult.get(1).toFloatArray(), stepResult.get(2).toFloatArray(), stepResult.get(3).toFloatArray()};
    }

    @Override
    public void close() {
        if (manager != null) manager.close();
        if (model != null) model.close();
        if (stepModel != null) stepModel.close();
        manager = null;
        model = null;
        stepModel = null;
        out = null;
        stepResult = null;
    }

    /**
     * Writes {@code source} as the TorchScript module {@code className} into a new temporary
     * directory and loads it as the PyTorch model {@code name} (its file {@code name}.pt).
     */
    static Model loadModule(String name, String className, String source) throws IOException, ai.djl.MalformedModelException {
        Path dir = Files.createTempDirectory("tessera-" + name);
        writeModule(dir.resolve(name + ".pt"), className, source);
        Model m = Model.newInstance(name, "PyTorch");
        m.load(dir, name);
        return m;
    }

    /**
     * A TorchScript archive: the module object pickled (class {@code __torch__.SDPA}, its two
     * attributes), its source, no constants, format version 3, stored uncompressed as PyTorch writes it.
     */
    static void writeModule(Path file, String className, String source) throws IOException {
        String root = className.toLowerCase(java.util.Locale.ROOT);
        try (OutputStream os = Files.newOutputStream(file); ZipOutputStream zip = new ZipOutputStream(os)) {
            store(zip, root + "/data.pkl", modulePickle(className));
            store(zip, root + "/code/__torch__.py", source.getBytes(StandardCharsets.UTF_8));
            store(zip, root + "/constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'});   // protocol 2, empty tuple
            store(zip, root + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        }
    }

    /** Pickle (protocol 2) of {@code __torch__.<className>} with {@code training=True, _is_full_backward_hook=None}. */
    private static byte[] modulePickle(String className) {
        ByteArrayOutputStream p = new ByteArrayOutputStream();
        p.write(0x80); p.write(2);                                        // PROTO 2
        p.writeBytes(("c__torch__\n" + className + "\n").getBytes(StandardCharsets.US_ASCII));   // GLOBAL
        p.write(')'); p.write(0x81);                                      // EMPTY_TUPLE, NEWOBJ
        p.write('}'); p.write('(');                                       // EMPTY_DICT, MARK
        unicode(p, "training"); p.write(0x88);                            // NEWTRUE
        unicode(p, "_is_full_backward_hook"); p.write('N');               // NONE
        p.write('u'); p.write('b'); p.write('.');                         // SETITEMS, BUILD, STOP
        return p.toByteArray();
    }

    private static void unicode(ByteArrayOutputStream p, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        p.write('X');                                                     // BINUNICODE, 4-byte little-endian length
        p.write(b.length); p.write(b.length >>> 8); p.write(b.length >>> 16); p.write(b.length >>> 24);
        p.writeBytes(b);
    }

    private static void store(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
        zip.putNextEntry(e);
        zip.write(data);
        zip.closeEntry();
    }
}
