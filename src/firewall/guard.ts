// The guard lives in guard/ (one file per hook); this keeps the old import path working.
export * from './guard/index.js';
