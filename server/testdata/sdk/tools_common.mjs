// What the tool-call scripts share: one tool, a result for it, a schema
// for structured output, and checks of what a model made of them.
import { check } from './common.mjs';

export const weather = {
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city', 'days'],
    additionalProperties: false,
  },
};

// clock is a second tool, for requests that name the one to call.
export const clock = {
  name: 'get_time',
  description: 'The time in a time zone',
  parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'], additionalProperties: false },
};

export const forecast = {
  city: 'Paris', days: 2, sky: 'sunny',
  schema: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } },
    required: ['city', 'days', 'tags'],
    additionalProperties: false,
  },
};

// checkArgs checks a tool call's name and its parsed arguments against
// the tool's schema.
export function checkArgs(where, name, args) {
  check(name === weather.name, `${where}: called ${JSON.stringify(name)}, want ${weather.name}`);
  checkSchema(where, args, weather.parameters);
}

// checkSchema checks v against the few JSON-schema words used here.
export function checkSchema(where, v, schema) {
  switch (schema.type) {
    case 'object':
      check(v !== null && typeof v === 'object' && !Array.isArray(v), `${where}: ${JSON.stringify(v)} is no object`);
      for (const k of schema.required ?? []) check(k in v, `${where}: ${JSON.stringify(v)} lacks ${k}`);
      for (const [k, sub] of Object.entries(v)) {
        const s = schema.properties?.[k];
        check(s || schema.additionalProperties !== false, `${where}: ${JSON.stringify(v)} has the unknown ${k}`);
        if (s) checkSchema(`${where}.${k}`, sub, s);
      }
      return;
    case 'array':
      check(Array.isArray(v), `${where}: ${JSON.stringify(v)} is no array`);
      v.forEach((x, i) => checkSchema(`${where}[${i}]`, x, schema.items));
      return;
    case 'integer':
      check(Number.isInteger(v), `${where}: ${JSON.stringify(v)} is no integer`);
      return;
    case 'string':
      check(typeof v === 'string', `${where}: ${JSON.stringify(v)} is no string`);
      return;
  }
  throw new Error(`${where}: schema type ${schema.type} not checked here`);
}
