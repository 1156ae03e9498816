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
