// A directory import (`../lib/nested`), re-exporting through an extension-less path.
export { answer } from './answer';
