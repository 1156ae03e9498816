export * from './types.js';
import type { ClassifierLoader, ClassifierOf, ClassifyOptions, LoadOptions, ModelInfo, Prediction, RgbaImage } from './types.js';

/** Every input `classify` accepts in a browser. */
export type ImageInput =
  | ImageData
  | RgbaImage
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | HTMLVideoElement
  | ImageBitmap
  | VideoFrame
  | Blob
  | File
  /** An image file's bytes (JPEG, PNG, WebP, GIF...), decoded as a Blob of them. */
  | Uint8Array
  | ArrayBuffer;

/** A loaded model: `await Classifier.load()` or `await Classifier.fromBytes(bytes, manifest)`. */
export type Classifier = ClassifierOf<ImageInput>;
export declare const Classifier: ClassifierLoader<ImageInput>;

/** Classifies with the package's model, loaded on first use. */
export declare function classify(input: ImageInput, options?: ClassifyOptions): Promise<Prediction[]>;

/** Any supported input as RGBA8 pixels. */
export declare function toRgba(input: ImageInput): Promise<RgbaImage>;

/** Any supported input as an ImageData. */
export declare function toImageData(input: ImageInput): Promise<ImageData>;

export interface LoadProgress {
  /**
   * 'fetch': downloading the model (loaded/total bytes), while the .wasm is fetched and compiled; 'compile': waiting
   * for that compilation; 'model': building the network.
   */
  stage: 'fetch' | 'compile' | 'model';
  loaded?: number;
  total?: number;
}

export interface WorkerOptions extends LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  /** Use this worker instead of the package's (it must speak the same protocol). */
  worker?: Worker;
  /** Where the .wasm is, when it is not beside worker.js (a relative URL is the page's, as for fetch()). */
  wasmUrl?: string | URL;
  /** Where the model is, when it is not the package's (a relative URL is the page's). */
  modelUrl?: string | URL;
  /**
   * Where that model's manifest.json is (default: the package's model's, compiled into the .wasm). A model built by
   * tools/build_model.py names its weights, and a manifest that describes others is refused with an error that says so.
   */
  manifestUrl?: string | URL;
  /**
   * Threads for inference (default: every core). Used where the page is cross-origin isolated and the threaded
   * build (threads/ beside worker.js) is served; elsewhere one thread.
   */
  threads?: number;
}

export interface WorkerClassifyOptions extends ClassifyOptions {
  /** Cancels the request while it is queued; a running one's answer is dropped. */
  signal?: AbortSignal;
}

/** The classifier in a Web Worker: requests run one at a time, in order. */
export declare class ClassifierWorker {
  constructor(options?: WorkerOptions);
  ready(): Promise<{ info: ModelInfo; loadMs: number; threads: number }>;
  /** Requests queued or running. */
  readonly pending: number;
  /** Top-k classes; the array also carries `ms`, the inference time in the worker. */
  classify(input: ImageInput, options?: WorkerClassifyOptions): Promise<Prediction[] & { ms: number }>;
  terminate(): void;
}
