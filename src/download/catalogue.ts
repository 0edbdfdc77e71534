// The files the reference publishes (its README and data/README.md), under the names
// `vilbert download` takes, with where each one lands: checkpoints in the cache folder, the
// task data and the detector in the reference's layout under the data folder.
import { loadTaskRegistry } from '../data/task-registry.js';

/** Where the reference's README and data/README.md point. */
export const REFERENCE_BASE = 'https://dl.fbaipublicfiles.com/vilbert-multi-task/';
/** The host of the BERT weights in the reference's archive map (vilbert/vilbert.py). */
export const BERT_BASE = 'https://s3.amazonaws.com/models.huggingface.co/';

export interface PublishedFile {
  /** The address's base (REFERENCE_BASE or BERT_BASE); `--mirror` replaces it. */
  base: string;
  /** The path under the base. */
  remote: string;
  /** `cache`: the checkpoint cache folder; `root`: the data folder (`--dir`). */
  place: 'cache' | 'root';
  /** The path under that folder. */
  target: string;
  /** The size in bytes where a source states it; otherwise the server's Content-Length is all there is. */
  size?: number;
  /** Unpacked into the data folder once complete (and then removed). */
  archive?: 'tar.gz';
  /** Whole addresses tried in turn when the base's address is gone (404, 410, 403, unknown host); never with a mirror. */
  fallbacks?: string[];
}

export interface CatalogueEntry {
  name: string;
  /** What it is, for --list. */
  summary: string;
  files: PublishedFile[];
}

function reference(
  remote: string,
  place: 'cache' | 'root',
  target = remote,
  extra: Partial<PublishedFile> = {},
): PublishedFile {
  return { base: REFERENCE_BASE, remote, place, target, ...extra };
}

function lmdb(folder: string): PublishedFile {
  const path = `${folder}/data.mdb`;
  return reference(path, 'root');
}

const ANNOTATIONS = reference('datasets.tar.gz', 'root', 'datasets.tar.gz', { archive: 'tar.gz' });
const COCO_TRAINVAL = 'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb';
const COCO_TEST = 'datasets/coco/features_100/COCO_test_resnext152_faster_rcnn_genome.lmdb';
const GQA = 'datasets/gqa/gqa_resnext152_faster_rcnn_genome.lmdb';
const NLVR2 = 'datasets/nlvr2/nlvr2_resnext152_faster_rcnn_genome.lmdb';
/** The feature LMDBs published apart from datasets.tar.gz (data/README.md, step 2); each is its data.mdb alone (read with lock=False). */
const SEPARATE_FEATURES = new Map<string, PublishedFile[]>([
  [COCO_TRAINVAL, [lmdb(COCO_TRAINVAL), lmdb(COCO_TEST)]],
  [GQA, [lmdb(GQA)]],
  [NLVR2, [lmdb(NLVR2)]],
]);

const FIXED: CatalogueEntry[] = [
  {
    name: 'pretrained',
    summary: 'ViLBERT pre-trained on Conceptual Captions (train_concap.py), pretrained_model.bin',
    files: [reference('pretrained_model.bin', 'cache')],
  },
  {
    name: 'multi-task',
    summary: 'the 12-in-1 multi-task model (train_tasks.py on 12 tasks), multi_task_model.bin',
    files: [reference('multi_task_model.bin', 'cache')],
  },
  {
    name: 'bert-base-uncased',
    summary:
      "BERT base uncased weights, the reference's archive map entry (vilbert/vilbert.py); if that address is gone, the Hugging Face Hub's copy",
    files: [
      {
        base: BERT_BASE,
        remote: 'bert/bert-base-uncased-pytorch_model.bin',
        place: 'cache',
        target: 'bert-base-uncased-pytorch_model.bin',
        fallbacks: ['https://huggingface.co/bert-base-uncased/resolve/main/pytorch_model.bin'],
      },
    ],
  },
  {
    name: 'detector',
    summary: "the ResNeXt-152 Faster R-CNN of the reference's feature extraction (data/README.md), into data/",
    files: [
      reference('detectron_model.pth', 'root', 'data/detectron_model.pth'),
      reference('detectron_config.yaml', 'root', 'data/detectron_config.yaml'),
    ],
  },
  {
    name: 'annotations',
    summary:
      "datasets.tar.gz: every downstream task's annotations, caches and the features not published apart, unpacked into datasets/",
    files: [ANNOTATIONS],
  },
  {
    name: 'coco',
    summary: 'COCO region features, trainval and test (data/README.md)',
    files: SEPARATE_FEATURES.get(COCO_TRAINVAL)!,
  },
];

/** The names of the checkpoints `--from_pretrained` accepts, with their cache file. */
export const CHECKPOINT_NAMES = ['pretrained', 'multi-task', 'bert-base-uncased'] as const;

/**
 * A task's features, by the task's name in the registry (lower-cased): the separately
 * published LMDBs its features_h5path1/2 name, or, for features that come inside
 * datasets.tar.gz, that archive.
 */
function taskEntries(): CatalogueEntry[] {
  const byName = new Map<string, { tasks: string[]; files: PublishedFile[] }>();
  for (const task of loadTaskRegistry().values()) {
    const name = task.name.toLowerCase().replace(/_q-a$|_qa-r$/, '');
    const files: PublishedFile[] = [];
    for (const path of [task.features_h5path1, task.features_h5path2]) {
      if (!path) continue;
      const separate = SEPARATE_FEATURES.get(path.replace(/\/+$/, ''));
      for (const file of separate ?? [ANNOTATIONS]) if (!files.includes(file)) files.push(file);
    }
    const entry = byName.get(name) ?? { tasks: [], files: [] };
    entry.tasks.push(task.name);
    for (const file of files) if (!entry.files.includes(file)) entry.files.push(file);
    byName.set(name, entry);
  }
  return [...byName].map(([name, { tasks, files }]) => ({
    name,
    summary: `features of ${tasks.join(', ')}${files.includes(ANNOTATIONS) ? ' (inside datasets.tar.gz)' : ''}`,
    files,
  }));
}

let cached: CatalogueEntry[] | undefined;

/** Every name `vilbert download` takes, `all` last (the task data: the annotations and every task's features). */
export function catalogue(): CatalogueEntry[] {
  if (!cached) {
    const tasks = taskEntries().filter((entry) => !FIXED.some((fixed) => fixed.name === entry.name));
    const data: PublishedFile[] = [ANNOTATIONS];
    for (const entry of tasks) for (const file of entry.files) if (!data.includes(file)) data.push(file);
    cached = [
      ...FIXED,
      ...tasks,
      {
        name: 'all',
        summary: "the task data: annotations and every task's features (no checkpoints, no detector)",
        files: data,
      },
    ];
  }
  return cached;
}

/** The files the names select, each once, in catalogue order; an unknown name throws, listing the known ones. */
export function selectFiles(names: readonly string[]): PublishedFile[] {
  const entries = catalogue();
  const selected = new Set<PublishedFile>();
  for (const name of names) {
    const entry = entries.find((candidate) => candidate.name === name.toLowerCase());
    if (!entry) {
      throw new RangeError(`'${name}' is not a published file set; known: ${entries.map((e) => e.name).join(', ')}`);
    }
    for (const file of entry.files) selected.add(file);
  }
  return entries
    .flatMap((entry) => entry.files)
    .filter((file, index, all) => selected.has(file) && all.indexOf(file) === index);
}

/** The catalogue entry of a checkpoint name, or undefined. */
export function checkpointEntry(name: string): CatalogueEntry | undefined {
  return (CHECKPOINT_NAMES as readonly string[]).includes(name)
    ? catalogue().find((entry) => entry.name === name)
    : undefined;
}

/** The address a file is fetched from: its base, or the mirror in its place. */
export function fileUrl(file: PublishedFile, mirror?: string): string {
  const base = mirror ? (mirror.endsWith('/') ? mirror : `${mirror}/`) : file.base;
  return new URL(file.remote, base).href;
}
