export * from './types.js';
import type { ClassifyOptions, ModelInfo, Prediction, RgbaImage } from './types.js';

/** In Node, images are RGBA8 pixels (decode them with the library of your choice). */
export type ImageInput = RgbaImage;

export declare class Classifier {
  private constructor();
  /** The model embedded in the package. */
  static load(): Promise<Classifier>;
  /** A model from ONNX bytes and its manifest (the embedded manifest when omitted). */
  static fromBytes(model: Uint8Array | ArrayBuffer | ArrayBufferView, manifest?: ModelInfo | string): Promise<Classifier>;
  /** Top-k classes, best first. */
  classify(input: ImageInput, options?: ClassifyOptions): Promise<Prediction[]>;
  /** Probabilities of all classes in index order. */
  scores(input: ImageInput): Promise<Float32Array>;
  /** Raw logits for an already preprocessed NCHW f32 input of shape `info().input.shape`. */
  logits(tensor: Float32Array): Float32Array;
  /** The manifest: weights (source, sha256, synthetic), params, preprocessing recipe. */
  info(): ModelInfo;
  /** Frees the model's memory now. */
  dispose(): void;
}

/** Classifies with the embedded model, loaded on first use. */
export declare function classify(input: ImageInput, options?: ClassifyOptions): Promise<Prediction[]>;

/** Any supported input as RGBA8 pixels. */
export declare function toRgba(input: ImageInput): Promise<RgbaImage>;
