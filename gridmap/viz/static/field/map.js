// A small map renderer on a <canvas>: the street's own roads and buildings (GeoJSON served by gridmap), the route
// of the assignment, the event, and the team's position with its accuracy. Hand-written on purpose: the app has
// no build step and loads nothing from outside the server, there are no map tiles (the data is ~2 MB of vectors
// for a whole street, 0.2 MB gzip'd, cached by the service worker), and what it draws is lines, polygons and dots.
// Leaflet or MapLibre would need vendoring (and MapLibre a tile pipeline) for the same picture.
// Coordinates are projected once to local metres (equirectangular around the street's centre: exact enough for
// a few km); each frame draws what lies in the view (per-feature bounding boxes), pans with a finger and zooms
// with two, or with the buttons.
const ROAD_WIDTH = {motorway: 7, trunk: 6, primary: 5, secondary: 4, tertiary: 3.5, residential: 2.5};

export class MapView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.roads = [];
    this.buildings = [];
    this.route = null;
    this.target = null;
    this.me = null;
    this.origin = null;
    this.center = [0, 0];
    this.scale = 0.5;  // px per metre
    this.pointers = new Map();
    this.pending = false;
    this.bindGestures();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  setExtent(ext) {  // [minLon, minLat, maxLon, maxLat]
    const lon0 = (ext[0] + ext[2]) / 2, lat0 = (ext[1] + ext[3]) / 2;
    this.origin = {lon0, lat0, kx: 111320 * Math.cos(lat0 * Math.PI / 180), ky: 110540};
    this.fitLonLat([[ext[0], ext[1]], [ext[2], ext[3]]]);
  }

  project([lon, lat]) {
    const o = this.origin;
    return [(lon - o.lon0) * o.kx, (lat - o.lat0) * o.ky];
  }

  prepare(coords) {
    const pts = new Float32Array(coords.length * 2);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    coords.forEach((c, i) => {
      const [x, y] = this.project(c);
      pts[2 * i] = x; pts[2 * i + 1] = y;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    });
    return {pts, box: [x0, y0, x1, y1]};
  }

  setData(geojson) {
    this.roads = [];
    this.buildings = [];
    for (const f of geojson.features) {
      const g = f.geometry;
      if (!g) continue;
      const lines = g.type === 'LineString' ? [g.coordinates] : g.type === 'MultiLineString' ? g.coordinates : [];
      for (const line of lines) {
        const item = this.prepare(line);
        if (f.properties.k === 'b') this.buildings.push(item);
        else { item.w = ROAD_WIDTH[f.properties.h] || 2; this.roads.push(item); }
      }
    }
    this.draw();
  }

  setRoute(geojson, target) {
    this.route = geojson && geojson.coordinates ? this.prepare(geojson.coordinates) : null;
    this.target = target ? this.project(target) : null;
    this.draw();
  }

  setMe(lon, lat, accuracy) {
    this.me = lon == null ? null : {xy: this.project([lon, lat]), acc: accuracy || 0};
    this.draw();
  }

  fitLonLat(points) {
    if (!this.origin || !points.length) return;
    const xy = points.map((p) => this.project(p));
    const xs = xy.map((p) => p[0]), ys = xy.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    this.center = [(x0 + x1) / 2, (y0 + y1) / 2];
    const w = this.canvas.clientWidth || 390, h = this.canvas.clientHeight || 300;
    this.scale = Math.min(w / Math.max(x1 - x0 + 120, 200), h / Math.max(y1 - y0 + 120, 200));
    this.draw();
  }

  zoom(f) { this.scale = Math.min(Math.max(this.scale * f, 0.02), 20); this.draw(); }
  centerOn(lon, lat) { if (this.origin) { this.center = this.project([lon, lat]); this.draw(); } }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    if (!w || !h) return;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.draw();
  }

  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.paint(); });
  }

  paint() {
    const ctx = this.ctx, c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.width / dpr, h = c.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#f3f1ec';
    ctx.fillRect(0, 0, w, h);
    if (!this.origin) return;
    const s = this.scale, [cx, cy] = this.center;
    const view = [cx - w / 2 / s, cy - h / 2 / s, cx + w / 2 / s, cy + h / 2 / s];
    const tx = (x) => (x - cx) * s + w / 2, ty = (y) => h / 2 - (y - cy) * s;
    const visible = (b) => b[2] >= view[0] && b[0] <= view[2] && b[3] >= view[1] && b[1] <= view[3];
    const path = (pts) => {
      ctx.beginPath();
      for (let i = 0; i < pts.length; i += 2) {
        const x = tx(pts[i]), y = ty(pts[i + 1]);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
    };
    if (s > 0.15) {
      ctx.fillStyle = '#d9d4cb';
      ctx.strokeStyle = '#c4bdb1';
      ctx.lineWidth = 0.5;
      for (const b of this.buildings) if (visible(b.box)) { path(b.pts); ctx.fill(); ctx.stroke(); }
    }
    ctx.strokeStyle = '#ffffff';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    for (const r of this.roads) {
      if (!visible(r.box)) continue;
      ctx.lineWidth = Math.max(r.w * s * 2.5, 1);
      path(r.pts); ctx.stroke();
    }
    ctx.strokeStyle = '#b9b2a6';
    for (const r of this.roads) {
      if (!visible(r.box) || r.w < 4) continue;
      ctx.lineWidth = 0.6;
      path(r.pts); ctx.stroke();
    }
    if (this.route) {
      ctx.strokeStyle = '#0b5cad';
      ctx.lineWidth = 5;
      path(this.route.pts); ctx.stroke();
    }
    if (this.target) {
      const x = tx(this.target[0]), y = ty(this.target[1]);
      ctx.fillStyle = '#d7263d';
      ctx.beginPath(); ctx.arc(x, y - 12, 8, 0, 2 * Math.PI); ctx.fill();
      ctx.beginPath(); ctx.moveTo(x - 6, y - 8); ctx.lineTo(x + 6, y - 8); ctx.lineTo(x, y); ctx.fill();
    }
    if (this.me) {
      const x = tx(this.me.xy[0]), y = ty(this.me.xy[1]);
      if (this.me.acc) {
        ctx.fillStyle = 'rgba(11, 92, 173, 0.15)';
        ctx.beginPath(); ctx.arc(x, y, Math.max(this.me.acc * s, 8), 0, 2 * Math.PI); ctx.fill();
      }
      ctx.fillStyle = '#0b5cad'; ctx.strokeStyle = '#fff'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
  }

  bindGestures() {
    const c = this.canvas;
    c.style.touchAction = 'none';
    let last = null;
    c.addEventListener('pointerdown', (e) => { c.setPointerCapture(e.pointerId); this.pointers.set(e.pointerId, [e.clientX, e.clientY]); last = null; });
    c.addEventListener('pointermove', (e) => {
      if (!this.pointers.has(e.pointerId)) return;
      const prev = this.pointers.get(e.pointerId);
      this.pointers.set(e.pointerId, [e.clientX, e.clientY]);
      if (this.pointers.size === 1) {
        this.center = [this.center[0] - (e.clientX - prev[0]) / this.scale, this.center[1] + (e.clientY - prev[1]) / this.scale];
        this.draw();
      } else if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (last) this.zoom(d / last);
        last = d;
      }
    });
    const up = (e) => { this.pointers.delete(e.pointerId); last = null; };
    c.addEventListener('pointerup', up);
    c.addEventListener('pointercancel', up);
    c.addEventListener('wheel', (e) => { e.preventDefault(); this.zoom(e.deltaY < 0 ? 1.25 : 0.8); }, {passive: false});
  }
}
