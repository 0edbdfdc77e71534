// The synthetic world generator (the embedded default world of the demo).
export {
  DEFAULT_WORLD_OPTIONS,
  GENERATOR_VERSION,
  SCENES_FILE,
  WORLD_FILE,
  generateWorld,
  readWorldInfo,
  resolveWorldOptions,
  type GeneratedWorld,
  type WorldInfo,
  type WorldOptions,
  type WorldProgress,
  type WorldTaskInfo,
} from './world.js';
export { REGISTRY_FILE } from './registry.js';
export { CONCEPT_CAPTIONS_DIR } from './concept-captions.js';
