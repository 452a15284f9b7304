export const flavour = 'mjs';
