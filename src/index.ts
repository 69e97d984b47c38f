export * from './source';
export * from './pipeline';
export * from './release';
export * from './monitoring';
export * from './patterns';
