typedef int svc_placeholder_;
