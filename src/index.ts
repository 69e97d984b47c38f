export * from './source';
export * from './pipeline';
export * from './release';
export * from './runtime';
export * from './monitoring';
export * from './patterns';
