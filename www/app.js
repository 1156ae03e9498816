// The demo page: UI state only. Everything about the model sits behind the package's worker bridge.
import { ClassifierWorker } from './pkg/index.js';

const $ = (id) => document.getElementById(id);
const SAMPLES = [
  ['chelsea.png', 'Chelsea, a tabby cat'],
  ['coffee.png', 'A cup of coffee'],
  ['astronaut.png', 'Astronaut Eileen Collins'],
  ['rocket.jpg', 'A rocket launch'],
];
const MB = (b) => (b / 1e6).toFixed(1);

// State the tests can read: how live mode kept up.
const stats = (window.wrnStats = {
  classified: 0, dropped: 0, maxPending: 0, errors: 0,
  get pending() {
    return worker?.pending ?? 0;
  },
});
let worker;
let info;
let loadMs = 0;
let threads = 1;
let stream;
let cameras = [];
let cameraIndex = 0;
let updateAccepted = false;

function showError(message) {
  stats.errors++;
  $('error').textContent = message;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function onProgress({ stage, loaded, total }) {
  const bar = $('load-progress');
  if (stage === 'fetch') {
    bar.value = total ? loaded / total : 0;
    $('load-label').textContent = `Downloading the model… ${MB(loaded)} of ${total ? MB(total) : '?'} MB`;
  } else {
    bar.removeAttribute('value'); // indeterminate
    $('load-label').textContent = stage === 'compile' ? 'Compiling the engine…' : 'Preparing the network…';
  }
}

function showWeights() {
  const w = info.weights;
  const banner = $('weights');
  banner.hidden = false;
  banner.classList.toggle('synthetic', w.synthetic);
  banner.textContent = w.synthetic
    ? 'Synthetic weights: this build holds seeded random weights, so its predictions mean nothing. ' +
      'Build with real weights to get real answers (see the README).'
    : `Weights: ${w.source}${w.published_top1 ? ` (ImageNet top-1 ${w.published_top1} %)` : ''}.`;
  $('about').textContent = `${info.arch === 'wrn50_2' ? 'Wide-ResNet-50-2' : info.arch}, ` +
    `${(info.params / 1e6).toFixed(1)} M parameters, ${info.quantization.split(':')[0]}, run by tract in ` +
    `WebAssembly. Weights ${w.source}, sha256 ${w.sha256.slice(0, 12)}…`;
}

/** Draws what the network sees: the centre crop of the short side, as the recipe takes it. */
function drawPreview(source, width, height) {
  const canvas = $('preview');
  const side = Math.min(width, height) * (info ? info.crop / info.resize : 1);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(source, (width - side) / 2, (height - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
  canvas.setAttribute('aria-label', 'The image being classified (centre crop)');
}

function render(top) {
  const list = $('top5');
  list.replaceChildren(...top.map((p) => {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${(p.score * 100).toFixed(2)}%`;
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label;
    label.title = `${p.wnid}, class ${p.index}`;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = `${(p.score * 100).toFixed(1)} %`;
    li.append(bar, label, score);
    li.dataset.index = p.index;
    li.dataset.score = p.score;
    return li;
  }));
  $('timing').textContent = `Inference ${Math.round(top.ms)} ms on ${threads} thread${threads > 1 ? 's' : ''} · ` +
    `model loaded in ${(loadMs / 1000).toFixed(1)} s` +
    (info.weights.synthetic ? ' · synthetic weights' : '');
}

async function classify(source, width, height) {
  if (!worker) return;
  clearError();
  drawPreview(source, width, height);
  try {
    const top = await worker.classify(source);
    stats.classified++;
    render(top);
  } catch (e) {
    showError(`Could not classify this image: ${e.message}`);
  }
}

async function classifyBlob(blob) {
  if (!blob.type.startsWith('image/')) {
    showError(`That is not an image (${blob.type || 'unknown type'}). Choose a JPEG, PNG, WebP or GIF file.`);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  } catch {
    showError(`Could not read ${blob.name ?? 'this image'}: the file is damaged or in a format this browser cannot decode.`);
    return;
  }
  try {
    await classify(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

// --- Camera -----------------------------------------------------------------------------------------------------
async function startCamera(deviceId) {
  stopCamera();
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  if (deviceId) video.deviceId = { exact: deviceId };
  else video.facingMode = 'environment';
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (e) {
    showError(`The camera is not available: ${e.message}`);
    return;
  }
  $('video').srcObject = stream;
  $('camera').hidden = false;
  $('camera-start').hidden = true;
  cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  const current = stream.getVideoTracks()[0]?.getSettings().deviceId;
  cameraIndex = Math.max(0, cameras.findIndex((c) => c.deviceId === current));
  $('camera-switch').hidden = cameras.length < 2;
}

function stopCamera() {
  stream?.getTracks().forEach((t) => t.stop());
  stream = undefined;
  $('live').checked = false;
  $('camera').hidden = true;
  $('camera-start').hidden = false;
}

function snapshot() {
  const video = $('video');
  if (video.readyState < 2) return showError('The camera has no picture yet.');
  const canvas = new OffscreenCanvas(video.videoWidth, video.videoHeight);
  canvas.getContext('2d').drawImage(video, 0, 0);
  classify(canvas, canvas.width, canvas.height);
}

// Live mode classifies the newest frame whenever the worker is free, and drops frames while it is busy.
function liveLoop() {
  if (!$('live').checked || !stream) {
    $('top5').setAttribute('aria-live', 'polite');
    return;
  }
  const video = $('video');
  if (worker.pending === 0 && video.readyState >= 2) {
    classify(video, video.videoWidth, video.videoHeight);
    stats.maxPending = Math.max(stats.maxPending, worker.pending);
  } else {
    stats.dropped++;
  }
  requestAnimationFrame(liveLoop);
}

// --- Wiring -----------------------------------------------------------------------------------------------------
function enableInputs(enabled) {
  for (const el of document.querySelectorAll('#inputs button, #file')) el.disabled = !enabled;
}

function wire() {
  $('file').addEventListener('change', (e) => {
    const file = e.target.files[0];
    if (file) classifyBlob(file);
    e.target.value = '';
  });
  $('camera-start').addEventListener('click', () => startCamera());
  $('camera-stop').addEventListener('click', stopCamera);
  $('camera-switch').addEventListener('click', () => {
    cameraIndex = (cameraIndex + 1) % cameras.length;
    startCamera(cameras[cameraIndex].deviceId);
  });
  $('snapshot').addEventListener('click', snapshot);
  $('live').addEventListener('change', (e) => {
    if (e.target.checked) {
      $('top5').setAttribute('aria-live', 'off'); // announcing every frame would drown a screen reader
      requestAnimationFrame(liveLoop);
    }
  });

  let dragDepth = 0;
  document.addEventListener('dragenter', (e) => {
    e.preventDefault();
    dragDepth++;
    $('drop-overlay').hidden = false;
  });
  document.addEventListener('dragleave', () => {
    if (--dragDepth <= 0) $('drop-overlay').hidden = true;
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    dragDepth = 0;
    $('drop-overlay').hidden = true;
    const file = [...(e.dataTransfer?.files ?? [])][0];
    // A picture dragged from another site arrives as a URL: fetching it would contact that site, so it is refused.
    if (file) classifyBlob(file);
    else showError('Drop an image file (pictures dragged from other websites are not fetched).');
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) classifyBlob(item.getAsFile());
    else showError('The clipboard holds no image. Copy an image, then paste it here.');
  });

  for (const [file, alt] of SAMPLES) {
    const button = document.createElement('button');
    button.type = 'button';
    button.title = `Classify: ${alt}`;
    const img = document.createElement('img');
    img.src = `samples/${file}`;
    img.alt = alt;
    button.append(img);
    button.addEventListener('click', async () => {
      await img.decode();
      classify(img, img.naturalWidth, img.naturalHeight);
    });
    $('samples').append(button);
  }
}

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  try {
    const registration = await navigator.serviceWorker.register('sw.js');
    const offerUpdate = (waiting) => {
      const note = $('error');
      note.hidden = false;
      note.textContent = 'A new version of this page is ready. ';
      const reload = document.createElement('button');
      reload.type = 'button';
      reload.textContent = 'Reload';
      reload.addEventListener('click', () => {
        updateAccepted = true;
        waiting.postMessage('skip-waiting');
      });
      note.append(reload);
    };
    if (registration.waiting && navigator.serviceWorker.controller) offerUpdate(registration.waiting);
    registration.addEventListener('updatefound', () => {
      const installing = registration.installing;
      installing?.addEventListener('statechange', () => {
        if (installing.state === 'installed' && navigator.serviceWorker.controller) offerUpdate(installing);
      });
    });
    let reloading = false;
    navigator.serviceWorker.addEventListener('controllerchange', () => {
      if (updateAccepted && !reloading) {
        reloading = true;
        location.reload();
      }
    });
  } catch (e) {
    console.warn('offline support unavailable:', e);
  }
}

async function main() {
  wire();
  enableInputs(false);
  registerServiceWorker();
  worker = new ClassifierWorker({ onProgress });
  try {
    ({ info, loadMs, threads } = await worker.ready());
    stats.threads = threads;
  } catch (e) {
    $('load-label').textContent = 'The model could not be loaded.';
    showError(`The model could not be loaded: ${e.message}`);
    return;
  }
  $('model').hidden = true;
  showWeights();
  enableInputs(true);
  document.body.dataset.ready = 'true';
}

main();
