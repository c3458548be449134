// keepalived lives in components/keepalived; this path stays for the components that still import it from here.
export * from "../keepalived/render";
export * from "../keepalived/timing";
