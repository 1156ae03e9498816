export * from './types.js';
import type { ClassifierLoader, ClassifierOf, ClassifyOptions, Prediction, RgbaImage } from './types.js';

/**
 * In Node: RGBA8 pixels, or a JPEG or PNG file as bytes (a Buffer is a Uint8Array) or a Blob, decoded by the package
 * (EXIF orientation applied).
 */
export type ImageInput = RgbaImage | Uint8Array | ArrayBuffer | Blob;

/** A loaded model: `await Classifier.load()` or `await Classifier.fromBytes(bytes, manifest)`. */
export type Classifier = ClassifierOf<ImageInput>;
export declare const Classifier: ClassifierLoader<ImageInput>;

/** Classifies with the package's model, loaded on first use. */
export declare function classify(input: ImageInput, options?: ClassifyOptions): Promise<Prediction[]>;

/** Any supported input as RGBA8 pixels. */
export declare function toRgba(input: ImageInput): Promise<RgbaImage>;
