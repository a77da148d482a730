import type { IConfiguration } from 'dependency-cruiser';

export declare const TIERS: { name: string; paths: string[] }[];
declare const config: IConfiguration & { forbidden: NonNullable<IConfiguration['forbidden']>; options: NonNullable<IConfiguration['options']> };
export default config;
