/**
 * The OS layer of the manifest firewall: the same manifest rendered as an
 * nftables ruleset (render/nftables.ts) and as a systemd drop-in
 * (render/systemd.ts).
 */
export type { Resolutions } from './render/common.js';
export { NFT_COUNTERS, NFT_TABLE, queryNames, renderDnsRefresh, renderNftables, type NftOptions } from './render/nftables.js';
export { renderSystemd, type SystemdOptions } from './render/systemd.js';
