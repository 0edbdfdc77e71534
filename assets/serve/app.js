// The page of `vilbert serve`: pick images from the gallery, a task and a text, and show what
// POST /api/<task> answers (docs/INFERENCE.md#the-json-api). Plain DOM, no build step.
/* global document, fetch, performance, URLSearchParams */

const SVG = 'http://www.w3.org/2000/svg';
const PAGE_SIZE = 48;

/** Per task: the text field's label and an example, how many images it takes, and its help. */
const TASKS = {
  vqa: { label: 'Question', example: 'what color is the ball?', images: 1, help: 'Answers from the VQA list.' },
  gqa: { label: 'Question', example: 'is the cube left of the ball?', images: 1, help: 'Answers from the GQA list.' },
  genomeqa: { label: 'Question', example: 'what is red?', images: 1, help: 'Visual Genome QA answers.' },
  visual7w: {
    label: 'Question',
    example: 'which object is blue?',
    images: 1,
    help: 'Pointing: the model picks the box that answers, among the candidates.',
  },
  ground: {
    label: 'Referring expression',
    example: 'the red ball',
    images: 1,
    help: 'The region the expression refers to is drawn on the picture.',
  },
  retrieve: {
    label: 'Caption',
    example: 'a red ball and a blue cube',
    images: 0,
    help: 'Ranks every image of the chosen collection for the caption.',
  },
  verify: {
    label: 'Statement about the two images',
    example: 'the left image has a red ball',
    images: 2,
    help: 'NLVR2: is the statement true of the pair? Pick the left and the right image in the gallery.',
  },
  entail: {
    label: 'Hypothesis',
    example: 'there is a ball',
    images: 1,
    help: 'Does the image entail, contradict or say nothing about the hypothesis?',
  },
};

const $ = (id) => document.getElementById(id);
const state = { health: null, collection: '', offset: 0, total: 0, selected: [null, null], slot: 0, details: new Map() };

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, body) {
  const response = await fetch(
    path,
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
  );
  const value = await response.json();
  if (!response.ok) throw new Error(value.error ? `${value.error.message} (${value.error.code})` : response.statusText);
  return value;
}

const pictureUrl = (id, labels) => `/api/images/${encodeURIComponent(id)}/picture${labels ? '' : '?labels=0'}`;
const currentTask = () => $('task').value;

function showError(error) {
  const box = $('error');
  box.hidden = error === null;
  box.textContent = error === null ? '' : String(error.message ?? error);
}

async function detail(id) {
  if (!state.details.has(id)) state.details.set(id, await api(`/api/images/${encodeURIComponent(id)}`));
  return state.details.get(id);
}

/** An image with an SVG over it in the image's pixel coordinates, for the boxes. */
async function frame(id, caption) {
  const image = await detail(id);
  const figure = element('figure');
  const canvas = element('div', { class: 'canvas' });
  canvas.style.aspectRatio = `${image.width} / ${image.height}`;
  if (image.hasPicture) canvas.append(element('img', { src: pictureUrl(id, true), alt: `image ${id}` }));
  const overlay = document.createElementNS(SVG, 'svg');
  overlay.setAttribute('class', 'overlay');
  overlay.setAttribute('viewBox', `0 0 ${image.width} ${image.height}`);
  overlay.setAttribute('preserveAspectRatio', 'none');
  canvas.append(overlay);
  figure.append(canvas, element('figcaption', {}, caption ?? `${id} (${image.width} × ${image.height})`));
  return { figure, overlay, image };
}

function drawBox(overlay, box, label, main) {
  const [x1, y1, x2, y2] = box;
  const rect = document.createElementNS(SVG, 'rect');
  const attributes = { x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: main ? 'box' : 'box other' };
  for (const [name, value] of Object.entries(attributes)) rect.setAttribute(name, String(value));
  rect.dataset.box = box.join(',');
  const title = document.createElementNS(SVG, 'title');
  title.textContent = label;
  rect.append(title);
  const text = document.createElementNS(SVG, 'text');
  text.setAttribute('x', String(x1 + 4));
  text.setAttribute('y', String(y1 + 18));
  text.textContent = label.split(' ')[0];
  overlay.append(rect, text);
}

async function showStage() {
  const stage = $('stage');
  const wanted = TASKS[currentTask()].images;
  const ids = state.selected.slice(0, Math.max(wanted, 1)).filter((id) => id !== null);
  const frames = await Promise.all(
    ids.map((id, index) => frame(id, wanted === 2 ? `${index === 0 ? 'left' : 'right'}: ${id}` : undefined)),
  );
  stage.replaceChildren(...(wanted === 0 ? [] : frames.map(({ figure }) => figure)));
  return frames;
}

function scoreRow(name, score, top) {
  const row = element('li');
  const bar = element('span', { class: 'bar' });
  const fill = element('span');
  fill.style.width = `${Math.max(0, Math.min(100, (100 * score) / (top || 1))).toFixed(1)}%`;
  bar.append(fill);
  row.append(element('span', { class: 'answer' }, name), bar, element('span', { class: 'score' }, score.toFixed(3)));
  return row;
}

function answerList(entries) {
  const top = Math.max(...entries.map(([, score]) => score), 1e-9);
  const list = element('ol', { id: 'answers' });
  list.append(...entries.map(([name, score]) => scoreRow(name, score, top)));
  return list;
}

async function showResult(task, response, frames) {
  const results = $('results');
  const { result } = response;
  if (task === 'vqa' || task === 'gqa' || task === 'genomeqa') {
    results.replaceChildren(answerList(result.map(({ answer, score }) => [answer, score])));
  } else if (task === 'ground' || task === 'visual7w') {
    const overlay = frames[0].overlay;
    result.forEach(({ box, score, regionIndex }, rank) => {
      const name = regionIndex === 0 ? 'whole image' : `box ${regionIndex}`;
      drawBox(overlay, box, `${rank + 1} ${name} ${score.toFixed(3)}`, rank === 0);
    });
    const list = answerList(
      result.map(({ box, regionIndex, score }) => [
        `${regionIndex === 0 ? 'whole image' : `box ${regionIndex}`} [${box.map((v) => Math.round(v)).join(', ')}]`,
        score,
      ]),
    );
    results.replaceChildren(list);
  } else if (task === 'retrieve') {
    const grid = element('div', { id: 'ranking', class: 'ranking' });
    grid.style.display = 'grid';
    grid.style.gridTemplateColumns = 'repeat(auto-fill, minmax(7rem, 1fr))';
    grid.style.gap = '0.5rem';
    for (const [rank, { image, score }] of result.entries()) {
      const card = element('button', { type: 'button', class: 'thumb', title: `select ${image}` });
      card.append(
        element('img', { src: pictureUrl(image, false), alt: `rank ${rank + 1}: image ${image}` }),
        element('span', { class: 'score' }, `#${rank + 1} · ${score.toFixed(2)}`),
      );
      card.addEventListener('click', () => selectImage(image));
      grid.append(card);
    }
    results.replaceChildren(grid);
  } else if (task === 'verify') {
    results.replaceChildren(
      element('p', { class: 'verdict', id: 'verdict' }, `${result.label ? 'True' : 'False'} (${result.score.toFixed(3)})`),
    );
  } else if (task === 'entail') {
    const verdict = element('p', { class: 'verdict', id: 'verdict' }, result.label);
    results.replaceChildren(verdict, answerList(Object.entries(result.scores)));
  }
}

async function ask(event) {
  event.preventDefault();
  const task = currentTask();
  const spec = TASKS[task];
  const body = { text: $('text').value };
  if (spec.images === 1) body.image = state.selected[0];
  if (spec.images === 2) body.images = state.selected;
  if (task === 'retrieve') body.collection = state.collection;
  if (task !== 'verify' && task !== 'entail') body.topk = Number($('topk').value) || 5;
  if (task === 'visual7w' && $('candidates').value.trim() !== '')
    body.candidates = $('candidates').value.split(/[\s,]+/).filter(Boolean).map(Number);
  showError(null);
  if (spec.images > 0 && body.image === null) return showError(new Error('pick an image in the gallery'));
  if (spec.images === 2 && state.selected.includes(null))
    return showError(new Error('pick the left and the right image in the gallery'));
  $('ask-button').disabled = true;
  $('status').textContent = 'Asking the model…';
  const started = performance.now();
  try {
    const response = await api(`/api/${task}`, body);
    const roundTrip = performance.now() - started;
    const frames = await showStage();
    await showResult(task, response, frames);
    $('timing').textContent =
      `Answered in ${roundTrip.toFixed(0)} ms: model ${response.ms.toFixed(0)} ms` +
      (response.batchSize > 1 ? ` (a batch of ${response.batchSize} requests)` : '') +
      `, queued ${response.waitedMs.toFixed(0)} ms.`;
    $('status').textContent = 'Done.';
  } catch (error) {
    showError(error);
    $('status').textContent = '';
  } finally {
    $('ask-button').disabled = false;
  }
}

function markSelected() {
  for (const button of $('gallery').querySelectorAll('.thumb'))
    button.setAttribute('aria-pressed', String(state.selected.includes(button.dataset.id)));
  const slots = $('slots');
  const wanted = TASKS[currentTask()].images;
  if (wanted === 0) return slots.replaceChildren(element('span', {}, `Collection: ${state.collection}`));
  if (wanted === 1) return slots.replaceChildren(element('span', { id: 'chosen' }, `Image: ${state.selected[0] ?? 'none'}`));
  const radios = ['left', 'right'].map((side, index) => {
    const label = element('label');
    const radio = element('input', { type: 'radio', name: 'slot', value: String(index) });
    radio.checked = state.slot === index;
    radio.addEventListener('change', () => (state.slot = index));
    label.append(radio, ` ${side}: ${state.selected[index] ?? 'none'}`);
    return label;
  });
  slots.replaceChildren(element('span', {}, 'Gallery picks:'), ...radios);
}

async function selectImage(id) {
  if (TASKS[currentTask()].images === 2) {
    state.selected[state.slot] = id;
    state.slot = state.slot === 0 ? 1 : 0;
  } else state.selected[0] = id;
  markSelected();
  $('results').replaceChildren();
  $('timing').textContent = '';
  try {
    await showStage();
  } catch (error) {
    showError(error);
  }
}

async function loadGallery(collection, append) {
  if (!append) {
    state.collection = collection;
    state.offset = 0;
    $('gallery').replaceChildren();
  }
  const query = new URLSearchParams({ collection, offset: String(state.offset), limit: String(PAGE_SIZE) });
  const page = await api(`/api/images?${query}`);
  state.total = page.total;
  state.offset += page.images.length;
  for (const { id } of page.images) {
    const button = element('button', { type: 'button', class: 'thumb', 'data-id': id, 'aria-pressed': 'false' });
    button.append(element('img', { src: pictureUrl(id, false), alt: '', loading: 'lazy' }), element('span', {}, id));
    button.addEventListener('click', () => selectImage(id));
    $('gallery').append(button);
  }
  $('more').hidden = state.offset >= state.total;
  markSelected();
  return page.images;
}

async function chooseTask() {
  const task = currentTask();
  const spec = TASKS[task];
  const status = state.health.tasks[task];
  $('text-label').textContent = spec.label;
  $('text').placeholder = spec.example;
  $('task-help').textContent = spec.help;
  $('candidates-field').hidden = task !== 'visual7w';
  $('topk').disabled = task === 'verify' || task === 'entail';
  $('results').replaceChildren();
  $('timing').textContent = '';
  if (status.collection && status.collection !== state.collection) {
    $('collection').value = status.collection;
    const images = await loadGallery(status.collection, false);
    state.selected = [images[0]?.id ?? null, images[1]?.id ?? null];
    state.slot = 0;
  }
  markSelected();
  await showStage();
}

async function start() {
  try {
    state.health = await api('/api/health');
    const { tasks, collections, upload, model } = state.health;
    $('model-line').textContent = `Model folder: ${model}`;
    for (const [task, status] of Object.entries(tasks)) {
      const option = element('option', { value: task }, status.available ? status.title : `${status.title} (unavailable)`);
      if (!status.available) {
        option.disabled = true;
        option.title = status.reason;
      }
      $('task').append(option);
    }
    for (const { name, count } of collections)
      $('collection').append(element('option', { value: name }, `${name} (${count})`));
    $('upload-reason').textContent = upload.available ? '' : `Upload is off: ${upload.reason}`;
    $('task').addEventListener('change', () => chooseTask().catch(showError));
    $('collection').addEventListener('change', () => loadGallery($('collection').value, false).catch(showError));
    $('more').addEventListener('click', () => loadGallery(state.collection, true).catch(showError));
    $('ask-form').addEventListener('submit', (event) => ask(event).catch(showError));
    const first = Object.keys(tasks).find((task) => tasks[task].available);
    if (first === undefined) throw new Error('this model folder answers none of the tasks');
    $('task').value = first;
    state.collection = '';
    await chooseTask();
    if (state.collection === '') {
      const images = await loadGallery(collections[0].name, false);
      state.selected = [images[0]?.id ?? null, images[1]?.id ?? null];
      markSelected();
      await showStage();
    }
    document.body.dataset.ready = 'true';
  } catch (error) {
    showError(error);
  }
}

start();
