/** One ranked ImageNet-1k class. */
export interface Prediction {
  /** Class index, 0..999, in the weights' order. */
  index: number;
  /** WordNet lemmas, e.g. "tabby, tabby cat". */
  label: string;
  /** WordNet ID, e.g. "n02123045". */
  wnid: string;
  /** Softmax probability in [0, 1]. */
  score: number;
}

/** RGBA8 pixels, rows top to bottom: what ImageData holds. */
export interface RgbaImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
}

/** The model's manifest.json: provenance and preprocessing recipe. */
export interface ModelInfo {
  arch: string;
  weights: { source: string; sha256: string; synthetic: boolean; [key: string]: unknown };
  params: number;
  macs: number;
  num_classes: number;
  model_file: string;
  model_sha256: string;
  quantization: string;
  input: { name: string; shape: number[] };
  output: { name: string; shape: number[] };
  resize: number;
  crop: number;
  interpolation: 'bilinear' | 'bicubic';
  mean: [number, number, number];
  std: [number, number, number];
  [key: string]: unknown;
}

export interface ClassifyOptions {
  /** How many classes to return (default 5, at most 1000). */
  topK?: number;
}

/** A loaded model, for a given kind of image input (each entry point says which). */
export interface ClassifierOf<Input> {
  /** Top-k classes, best first. */
  classify(input: Input, options?: ClassifyOptions): Promise<Prediction[]>;
  /** Probabilities of all classes in index order. */
  scores(input: Input): Promise<Float32Array>;
  /** Raw logits for an already preprocessed NCHW f32 input of shape `info().input.shape`. */
  logits(tensor: Float32Array): Float32Array;
  /** The manifest: weights (source, sha256, synthetic), params, preprocessing recipe. */
  info(): ModelInfo;
  /** Frees the model's memory now. */
  dispose(): void;
  /** How many threads run inference. */
  readonly threads: number;
}

export interface LoadOptions {
  /**
   * How the weights are held and multiplied:
   * - 'int8-compute' (default): int8 in memory and integer arithmetic, each layer's activations rounded to 11-15
   *   bits: about 2.8 times as fast as the others, logits within 2e-4 of their range of f32 arithmetic's;
   * - 'int8': int8 in memory, widened to f32 one matrix at a time as it runs: logits as onnxruntime's to 1e-4;
   * - 'f32': f32 in memory, about three times the memory.
   */
  weights?: 'int8-compute' | 'int8' | 'f32';
  /**
   * Node only: how many threads run inference (default: every core up to 8, `os.availableParallelism()`). The first load
   * in a process fixes it for the process. In browsers a classifier runs on the calling thread: use
   * `ClassifierWorker` for more.
   */
  threads?: number;
}

/** How classifiers are made. */
export interface ClassifierLoader<Input> {
  /** The model shipped in the package (model.onnx beside the .wasm). */
  load(options?: LoadOptions): Promise<ClassifierOf<Input>>;
  /**
   * A model from ONNX bytes and its manifest (when omitted, the package's model's manifest: the bytes must then be
   * that model). A model built by tools/build_model.py names its weights; a manifest that describes others is refused.
   */
  fromBytes(model: Uint8Array | ArrayBuffer | ArrayBufferView, manifest?: ModelInfo | string,
            options?: LoadOptions): Promise<ClassifierOf<Input>>;
}
