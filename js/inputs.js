// Turns whatever image a web developer has into RGBA8 pixels: { data, width, height }.
// Runs on the thread that calls it (DOM sources need the main thread); only the pixels go on to wasm.
// Image files (a Blob, or their bytes) are decoded by the browser where there is one (createImageBitmap), else by the
// package's decoder in wasm, which node.js sets.

let decodeFile;

/** @internal `decoder(bytes)` resolves with the RGBA8 pixels of an image file's bytes. */
export function setFileDecoder(decoder) {
  decodeFile = decoder;
}

const isRgbaLike = (x) =>
  x != null && typeof x === 'object' && (x.data instanceof Uint8Array || x.data instanceof Uint8ClampedArray) &&
  Number.isInteger(x.width) && Number.isInteger(x.height);

const has = (name) => typeof globalThis[name] === 'function';

/** An image file's bytes: an ArrayBuffer, or a Uint8Array (Node's Buffer is one) that carries no pixel sizes. */
const isFileBytes = (x) => x instanceof ArrayBuffer || x instanceof Uint8Array;

async function decodeBlob(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new Error(`classify: cannot decode this ${blob.type || 'file'} as an image (${e.message})`);
  }
  try {
    return draw(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

function describe(x) {
  if (x === null) return 'null';
  if (typeof x !== 'object') return typeof x;
  return x.constructor?.name ?? 'object';
}

function canvas2d(width, height) {
  if (has('OffscreenCanvas')) {
    const c = new OffscreenCanvas(width, height);
    return c.getContext('2d', { willReadFrequently: true });
  }
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  return c.getContext('2d', { willReadFrequently: true });
}

function draw(source, width, height) {
  if (!width || !height) throw new Error(`classify: the image has no pixels yet (${width}x${height})`);
  const ctx = canvas2d(width, height);
  ctx.drawImage(source, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height);
}

/**
 * ImageData, {data, width, height} RGBA, HTMLImageElement, HTMLCanvasElement, OffscreenCanvas, HTMLVideoElement
 * (its current frame), ImageBitmap, VideoFrame, Blob, File, or an image file's bytes (Uint8Array, Buffer,
 * ArrayBuffer; in Node JPEG and PNG) -> {data, width, height} RGBA8.
 */
export async function toRgba(input) {
  if (isRgbaLike(input)) return input;
  if (has('HTMLImageElement') && input instanceof HTMLImageElement) {
    if (!input.complete || input.naturalWidth === 0) await input.decode();
    return draw(input, input.naturalWidth, input.naturalHeight);
  }
  if (has('HTMLVideoElement') && input instanceof HTMLVideoElement) {
    if (input.readyState < 2) throw new Error('classify: the video has no frame yet (wait for "loadeddata")');
    return draw(input, input.videoWidth, input.videoHeight);
  }
  if ((has('HTMLCanvasElement') && input instanceof HTMLCanvasElement) ||
      (has('OffscreenCanvas') && input instanceof OffscreenCanvas)) {
    const ctx = input.getContext('2d', { willReadFrequently: true });
    // A canvas with a WebGL context has no 2d context: copy it through a 2d canvas.
    return ctx ? ctx.getImageData(0, 0, input.width, input.height) : draw(input, input.width, input.height);
  }
  if (has('ImageBitmap') && input instanceof ImageBitmap) return draw(input, input.width, input.height);
  if (has('VideoFrame') && input instanceof VideoFrame) return draw(input, input.displayWidth, input.displayHeight);
  const blob = has('Blob') && input instanceof Blob;
  if (blob || isFileBytes(input)) {
    const browser = has('createImageBitmap') && (has('OffscreenCanvas') || typeof document !== 'undefined');
    if (browser) return decodeBlob(blob ? input : new Blob([input]));
    if (!decodeFile) throw new Error('classify: decoding an image file needs a browser, or Node');
    if (blob) return decodeFile(new Uint8Array(await input.arrayBuffer()));
    return decodeFile(input instanceof ArrayBuffer ? new Uint8Array(input) : input);
  }
  throw new TypeError(
    `classify: expected ImageData, {data, width, height} RGBA, an image, canvas, video, ImageBitmap, Blob, File or ` +
    `an image file's bytes; got ${describe(input)}`);
}

/** The same, as a real ImageData (browsers only). */
export async function toImageData(input) {
  if (input instanceof ImageData) return input;
  const { data, width, height } = await toRgba(input);
  return new ImageData(new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength), width, height);
}
